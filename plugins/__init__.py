"""sganon's first-party plugins, one package each, loaded through the ``sganon.plugins`` entry points."""
