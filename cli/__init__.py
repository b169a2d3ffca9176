"""The ``sganon`` command line (click). Only this package prints."""
