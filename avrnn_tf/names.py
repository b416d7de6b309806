"""The names a config may choose from (model kinds, emissions, critics, algorithms, ...).

A leaf module with no imports: `config.py` validates against these names without importing
TensorFlow, and the modules that implement them (models.py, heads.py, adversarial.py) import their
tuple from here, so a name is added in one place.
"""

KINDS = ("rnn", "vrnn_i", "vrnn", "zforcing", "srnn", "storn")  # registry.py
SRNN_POSTERIORS = ("smoothing", "filtering")       # srnn.py
EMISSIONS = ("normal", "gmm", "bernoulli")          # heads.py
CRITICS = ("wgan", "wgan_gp", "gan")                # adversarial.py
ALGORITHMS = ("elbo", "avrnn")                      # training.py
OBJECTIVES = ("elbo", "iwae", "fivo")               # objectives.py
OPTIMIZERS = ("adam", "rmsprop")
XLA_CHOICES = ("auto", "on", "off")
DATA_FORMATS = ("auto", "synthetic", "wav_dir", "pianoroll",
                "timit", "fsdd", "prepared")        # data/corpora.py, data/prepared.py
DECODERS = ("auto", "soundfile", "tfio")
