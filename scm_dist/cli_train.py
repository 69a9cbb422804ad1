"""``python -m scm_dist.cli_train``: the scm-train command as a module (for launchers)."""

from .cli import train_main

if __name__ == "__main__":
    train_main()
