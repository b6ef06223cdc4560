"""`make bench`: performance figures, one line each as `bench: <name> = <value> <unit>`."""
