from dlcli.launch import main

main()
