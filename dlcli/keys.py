"""How dlcli reads YAML and spells a config key: one reading of a scalar for config files,
`--set`, `--where` and the index (`1e-4` is a number in each), one spelling of a key
(`model.layers.1.Dense.units`, as `--set` takes it). No pydantic: the reading commands use it."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from dlcli.errors import cut

KeyPath = tuple[str | int, ...]


def format_path(path: Iterable[str | int]) -> str:
    """('model', 'layers', 2, 'Conv2D') -> 'model.layers.2.Conv2D': a key as `--set` and `--where` take it."""
    return ".".join(str(part) for part in path)


def key_parts(key: str) -> list[str]:
    """A key as written, dots or brackets: 'model.layers[0].Dense' -> ['model', 'layers', '0', 'Dense']."""
    return [part for part in re.split(r"[.\[\]]", key.strip()) if part]


def flattened(value: Any, prefix: KeyPath = ()) -> Iterator[tuple[str, Any]]:
    """(key, value) for every leaf of a config, each key spelled as `format_path` spells it. A list
    of scalars (`metrics: [accuracy, auc]`) is one value; a list that holds mappings (layers)
    is walked by position; an empty mapping (`Flatten: {}`) is a leaf, so a layer is never lost."""
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from flattened(inner, (*prefix, key))
    elif isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        for position, inner in enumerate(value):
            yield from flattened(inner, (*prefix, position))
    elif prefix:
        yield format_path(prefix), value


# Config keys whose value is a name (`optimizer: adam`) or a mapping of the name and arguments
# (`optimizer: {name: adam, learning_rate: 0.001}`): the same key, however it is written.
NAMED_OBJECTS = ("optimizer", "loss")


def names_spelled_out(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with each NAMED_OBJECTS name written as a mapping (`optimizer: {name: adam}`), so
    that two configs compare key by key however they write it."""
    return {key: {"name": value} if key in NAMED_OBJECTS and isinstance(value, str) else value
            for key, value in config.items()}


def canonical(name: str) -> str:
    """A Keras object's name as compared: 'sparse_categorical_crossentropy' and
    'SparseCategoricalCrossentropy' are one."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def visible(name: str) -> str:
    """`name` with each character a terminal does not show (a zero-width space, a no-break space)
    written as its \\u code: `'ep\\u200bochs'` and `'epochs'` look alike otherwise; cut when it is
    longer than any key (`cut`)."""
    return cut("".join(c if c.isprintable() or c == " " else f"\\u{ord(c):04x}" for c in name))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """'; did you mean 'x'?' for the closest choice (case-insensitive), or ''. A word that begins
    exactly one choice is taken for its short form (`val_acc` for `val_accuracy`, which difflib
    finds further than `val_mae`)."""
    by_lower = {choice.lower(): choice for choice in choices}
    lower = str(word).lower()
    extended = [choice for choice in by_lower if choice.startswith(lower) and choice != lower] if len(lower) >= 3 else []
    match = extended if len(extended) == 1 else difflib.get_close_matches(lower, list(by_lower), n=1, cutoff=0.6)
    suggestion = f"; did you mean '{by_lower[match[0]]}'?" if match else ""
    return suggestion + _look_alike(str(word), by_lower.values())


def _look_alike(word: str, choices: Iterable[str]) -> str:
    """Where `word` holds a character that is not ASCII among names that all are (a Cyrillic а
    typed for a Latin a looks the same, and so would the suggestion): named, with its position."""
    stranger = next(((index, char) for index, char in enumerate(word) if not char.isascii()), None)
    if stranger is None or not all(str(choice).isascii() for choice in choices):
        return ""
    index, char = stranger
    return (f" ('{visible(word)}' holds {unicodedata.name(char, 'an unnamed character')}, U+{ord(char):04X}, at "
            f"character {index + 1}: type it again in ASCII)")


class YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` as a float (YAML 1.2), as learning rates are written;
    in pure Python, for the marks and messages of a config error."""


class _FastYamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The same reading through libyaml where it is installed: the index reads every run's config."""


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    try:
        return yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError:  # Python reads no integer of more than sys.get_int_max_str_digits() digits
        raise yaml.constructor.ConstructorError(
            None, None, f"a whole number of {len(node.value)} characters, too long to read: no setting is that large",
            node.start_mark,
        ) from None


for _loader in (YamlLoader, _FastYamlLoader):  # one reading of a scalar: config files, --set, --where, the index
    _loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
    _loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )


def not_a_boolean(value: bool, expected: str) -> str:
    """What to say of a boolean where `expected` (a number, ...) was: YAML made it from a word."""
    return f"expected {expected}, not the boolean {str(value).lower()} (YAML reads yes, no, on and off as booleans)"


def not_finite(value: float) -> str:
    """What to say of an infinite or undefined number (YAML's .inf, .nan) where a setting is: none means that."""
    return f"must be a finite number, not {value}"


def parse_yaml_value(text: str) -> Any:
    """A scalar or flow value as YAML types it: '3' -> 3, '1e-4' -> 0.0001, '[a, b]' -> list."""
    return yaml.load(text, Loader=YamlLoader)  # a SafeLoader subclass: no arbitrary objects


# A config is a page of YAML; this bound refuses an alias bomb ("billion laughs") before anything
# walks all it expands to.
MAX_CONFIG_VALUES = 10_000


def read_yaml(text: str) -> Any:
    """A whole YAML document (a run's resolved config), typed as config files are read."""
    return yaml.load(text, Loader=_FastYamlLoader)  # a SafeLoader subclass: no arbitrary objects


def too_many_values(document: Any) -> bool:
    """Whether a read document holds more than MAX_CONFIG_VALUES values, aliases counted as they
    expand (PyYAML shares an alias's object, so the document itself stays small), or contains itself."""
    stack, visited = [document], 0
    while stack:
        value = stack.pop()
        visited += 1
        if visited > MAX_CONFIG_VALUES:  # an alias that contains itself never ends: it ends here
            return True
        if isinstance(value, dict):
            stack += value.values()
        elif isinstance(value, list):
            stack += value
    return False


_BRACKETS = {yaml.FlowSequenceStartToken: "a '[' list", yaml.FlowMappingStartToken: "a '{' mapping"}


def yaml_error_place(error: yaml.MarkedYAMLError, text: str) -> tuple[str, yaml.Mark | None]:
    """A YAML error's problem and where it is. When the text ended inside a bracket or a quote, the
    end of the file points at nothing: the place is where it opened."""
    problem, mark = error.problem or error.context, error.problem_mark or error.context_mark
    at_end = error.problem_mark is not None and not text.lstrip("\ufeff")[error.problem_mark.index:].strip()
    if at_end and "quoted scalar" in (error.context or "") and error.context_mark is not None:
        return "a quoted string opened here is never closed", error.context_mark
    if at_end:
        opened: list[yaml.Token] = []  # the brackets not closed yet, as the scanner meets them
        try:
            for token in yaml.scan(text, Loader=yaml.SafeLoader):
                if type(token) in _BRACKETS:
                    opened.append(token)
                elif isinstance(token, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)) and opened:
                    opened.pop()
        except yaml.YAMLError:
            pass  # the scanner stops where the parser did: what it met so far is what is open
        if opened:
            return f"{_BRACKETS[type(opened[-1])]} opened here is never closed", opened[-1].start_mark
    return str(problem), mark


def yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's complaint in one line: the problem and where in the value, without its echo of the text."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        mark = error.problem_mark
        return error.problem + (f" (at character {mark.column + 1})" if mark and mark.line == 0 else "")
    return str(error).splitlines()[0]
