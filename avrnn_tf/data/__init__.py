"""Data sources: the synthetic corpus, audio directories, framing and tf.data pipelines."""
