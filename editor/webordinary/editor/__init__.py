"""The editor: the process in each environment's pod (queue worker, Claude Code, git, previews)."""
