"""From a config to Keras: the backend, the model builder (stacks and graphs, every name through
Keras), the run's saved models and the inference files that take raw inputs."""
