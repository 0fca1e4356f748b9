"""An unlearning method packaged outside the lab (see docs/extending.md, "Add a method")."""
