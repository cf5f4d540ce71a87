"""What each ``heal-batch`` subcommand does; ``heal_batch.cli`` only parses argv and dispatches."""
