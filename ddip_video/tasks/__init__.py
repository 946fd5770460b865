"""One module per Double-DIP task: its model, losses, schedule and outputs."""
