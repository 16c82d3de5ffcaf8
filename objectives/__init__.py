"""Training objectives that ``hpo`` optimises: plain ``train(config, report)`` functions."""
