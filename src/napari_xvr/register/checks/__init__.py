"""How sure a result is: its uncertainty, its fit, the mirror and setup checks and the verdict."""
