"""Dataset discovery, splits, training, evaluation and reports."""
