"""TensorBoard summaries that describe a run as a whole, so runs compare side by side.

With `tensorboard --logdir runs` (the parent of the workdirs) every workdir is a run, and:
  - the Text dashboard shows each run's config (tag `config`, one entry per invocation, at the
    step it started from);
  - the HParams dashboard lists every run with its config fields (all leaf fields, dotted names
    such as `model.h_dim`) against its validation metrics (METRICS, the last value written).
"""

import json

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

# The validation scalars (loop.Run.evaluate) the HParams dashboard shows for each run.
METRICS = (("valid/elbo_per_frame", "valid ELBO per frame (nats)"),
           ("valid/kl_per_frame", "valid KL per frame (nats)"),
           ("valid/log_px_per_frame", "valid log p(x) per frame (nats)"),
           ("valid/loss", "valid loss per frame"))


def hparam_values(config):
    """{dotted field name: value} of every leaf field; values other than bool, int, float and str
    (None, tuples) as their JSON text, which is what the HParams plugin can hold."""
    out = {}

    def visit(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                visit(value, f"{prefix}{key}.")
            elif isinstance(value, (bool, int, float, str)):
                out[prefix + key] = value
            else:
                out[prefix + key] = json.dumps(value)

    visit(config.to_dict(), "")
    return out


def config_markdown(config):
    """The config as a Markdown code block (TensorBoard renders text summaries as Markdown)."""
    from avrnn_tf import config as config_lib

    return "```\n" + config_lib.to_json(config) + "\n```"


def write(writer, config, step):
    """Writes the config text and the hparams summaries of one invocation of the run."""
    values = hparam_values(config)
    with writer.as_default(step=step):
        tf.summary.text("config", config_markdown(config))
        hp.hparams_config(hparams=[hp.HParam(name) for name in sorted(values)],
                          metrics=[hp.Metric(tag, display_name=name) for tag, name in METRICS])
        hp.hparams(values)
    writer.flush()
