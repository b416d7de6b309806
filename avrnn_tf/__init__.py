"""avrnn_tf: recurrent latent-variable models of highly variable sequences (raw speech first).

The headline model is the adversarially regularized VRNN (A-VRNN, Huang & Xiao); the family also
holds RNN-Gauss, RNN-GMM, VRNN-I and VRNN-Gauss/GMM (Chung et al. 2015) as switches of one design,
plus Z-Forcing, SRNN and STORN (own files).
Importing the package does not import TensorFlow; the modules that need it do.
"""

__version__ = "0.1.0"
