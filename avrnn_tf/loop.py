"""`train_and_evaluate(config, workdir)`: the training run behind `avrnn-train`.

Workdir layout (everything a run writes):
  config.json        the config of the latest invocation (also config.<step>.json per resume)
  data_stats.json    sample rate, frame size, standardization mean/std, split sizes, source
  checkpoints/       tf.train.Checkpoint files: network, trainer, optimizer (ckpt-<step>; checkpointing.py)
  tensorboard/       event files (tags in the README)
  checkpoints/best/  the checkpoint with the best validation value of the run's own bound so far
                     (elbo, iwae or fivo per frame; best.json says which); what avrnn-eval and
                     avrnn-export read by default
  samples/           WAVs generated at the end of the run (step_<step>_<k>.wav)
  .lock              held by the running process (see workdir.py)

The run is cut into rounds that end at multiples of `train.eval_every`; each round is one Keras
`fit` call over a dataset that starts at the current global step (see data/pipeline.py), so a rerun
with the same command restores the last checkpoint and continues the step count and the data order.

Reliability: SIGTERM/SIGINT finish the current step, save a checkpoint and stop (exit status 143 /
130 from the CLI); a run killed outright resumes from its last complete checkpoint and, because
weights are initialised from `train.seed` and batches and noise are functions of the step, reaches
the same weights as an uninterrupted run (bitwise with `train.deterministic`). Non-finite steps are
skipped by the trainer and stop the run after `train.max_nonfinite_steps` in a row; a checkpoint is
never written with non-finite weights.

Weight averaging (`train.ema_decay` > 0, averaging.py): validation, the best checkpoint, generated
clips and every checkpoint's `network` use an exponential moving average of the weights, updated
after each step; training steps its own weights, which checkpoints keep beside the average.

Validation rounds: after each round the validation value of the bound the run trains
(`<train.objective>_per_frame`; the ELBO for A-VRNN) keeps the best checkpoint, counts rounds
without improvement for early stopping (`train.early_stopping_patience`) and the plateau decay of
the learning rate (`train.lr_decay_on_plateau`, `train.lr_plateau_patience`,
`train.min_learning_rate`). The counters live in the checkpoint
(checkpointing.ValidationCounters), and a round's last step is checkpointed after its validation
pass, so a resumed run stops and decays at the same round as an uninterrupted one.

Parts: train_data.py (the corpus, its statistics and the training/validation batches),
checkpointing.py (save, best, restore, rotation), callbacks.py (TensorBoard summaries as Keras
callbacks), multi_worker.py (the Keras patches of a multi-worker fit); here the trainer's
construction, the rounds of `fit` and signals.
"""

import math
import os
import signal

import keras
import numpy as np
import tensorflow as tf

from avrnn_tf import averaging
from avrnn_tf import callbacks as callbacks_lib
from avrnn_tf import checkpointing
from avrnn_tf import config as config_lib
from avrnn_tf import figures
from avrnn_tf import objectives
from avrnn_tf import progress
from avrnn_tf import registry
from avrnn_tf import run_summary
from avrnn_tf import train_data
from avrnn_tf import training
from avrnn_tf import workdir as workdir_lib
from avrnn_tf.data import pipeline


def log(message):
    print(f"avrnn-train: {message}", flush=True)


class TrainingStopped(RuntimeError):
    """The run stopped before its last step; `exit_code` is what the CLI exits with."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


def make_optimizer(train):
    """The reconstruction/ELBO optimizer. train.weight_decay > 0 adds decoupled weight decay
    (Keras applies w -= lr * wd * w before the update) to the weight matrices, not the biases."""
    decay = float(train.weight_decay) or None
    if train.optimizer == "adam":
        optimizer = keras.optimizers.Adam(train.learning_rate, weight_decay=decay)
    else:
        optimizer = keras.optimizers.RMSprop(train.learning_rate, weight_decay=decay)
    if decay:
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


# Multi-worker runs agree on a received signal every this many steps (one all-reduce each).
SIGNAL_SYNC_EVERY = 10

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name):
    """The tf.distribute strategy called `name`: "default" (one device) or "mirrored" (every local
    GPU, or every logical CPU device; data-parallel, gradients summed across replicas), or
    "multi_worker" (MultiWorkerMirroredStrategy over the workers TF_CONFIG lists; see
    multi_worker.py)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        from avrnn_tf import multi_worker

        return multi_worker.strategy()
    raise config_lib.ConfigError(f"unknown strategy {name!r}; expected one of {STRATEGIES}")


def use_xla(setting):
    """Whether the train step is XLA-compiled for `train.xla` = auto | on | off.

    "auto" compiles on GPUs only, and not under a multi-device strategy (as Keras' own "auto"):
    on these CPUs the compiled step measured 1.4-2x slower than the graph step, whose matmuls go
    to oneDNN (BUILD_NOTES 4.7). "on" compiles wherever it is asked to.
    """
    if setting == "auto":
        return bool(tf.config.list_logical_devices("GPU")) and not tf.distribute.has_strategy()
    return setting == "on"


def build_trainer(config, network):
    """The compiled training algorithm a config asks for, its optimizer(s) built."""
    t = config.train
    if t.algorithm == "avrnn":
        return build_avrnn_trainer(config, network)
    trainer = training.ELBOTrainer(network, objectives.from_config(config), seed=t.seed,
                                   clip_norm=t.clip_norm)
    trainer.compile(optimizer=make_optimizer(t), jit_compile=use_xla(t.xla))
    trainer.optimizer.build(network.trainable_variables)
    trainer.built = True  # Its network is built; keeps fit from calling it to build (tf.distribute).
    return trainer


def emission_bias_for(config, corpus):
    """Bernoulli emission on piano-rolls: the logit of the training mean per note (as FIVO)."""
    if getattr(corpus, "binary", False) and config.model.emission == "bernoulli":
        from avrnn_tf.data import pianoroll

        return pianoroll.mean_logits([pipeline.frame(v, config.data.frame_size)
                                      for _, v in corpus.train])
    return None


def build_avrnn_trainer(config, network):
    """`training.AVRNNTrainer` with its critic and three optimizers (RMSProp for critic and
    adversarial phases; the reconstruction phase's `train.optimizer` is the compiled one, so its
    `iterations` is the global step)."""
    from avrnn_tf import adversarial

    t, a = config.train, config.adversarial
    if not network.z_dim:
        raise config_lib.ConfigError(
            f"config.train.algorithm = 'avrnn' needs a latent model: config.model.kind = "
            f"{config.model.kind!r} has no latent (use 'vrnn', or 'vrnn_i' for a fixed prior)")
    critic = adversarial.Critic(a.critic_lstm_units, a.critic_dense_units, a.critic_dense_layers,
                                name="critic")
    critic.build_for(network.z_dim)
    try:
        trainer = training.AVRNNTrainer(
            network, critic, seed=t.seed, clip_norm=t.clip_norm, kl_weight=a.kl_weight,
            critic_type=a.critic, n_critic=a.n_critic, clip_value=a.clip_value,
            gp_weight=a.gp_weight, separate_batches=a.separate_batches, regularize=a.regularize,
            objective=objectives.from_config(config, kl_weight=a.kl_weight))
    except ValueError as e:  # A model with parameters no A-VRNN phase trains.
        raise config_lib.ConfigError(f"config.train.algorithm = 'avrnn': {e}") from None
    trainer.compile(optimizer=make_optimizer(t), jit_compile=use_xla(t.xla))
    trainer.optimizer.build(trainer.recon_variables)
    trainer.set_phase_optimizers(keras.optimizers.RMSprop(a.critic_learning_rate),
                                 keras.optimizers.RMSprop(a.adversarial_learning_rate))
    trainer.built = True
    return trainer


# The in-memory training batches of a trainer (train_data.py); kept here for its callers.
train_dataset = train_data.in_memory_dataset


class Run:
    """Everything a training run holds: data, trainer, checkpoints (checkpointing.Checkpointer),
    summary writer; summaries are callbacks (callbacks.py)."""

    def __init__(self, config, workdir, force_resume=False, strategy="default"):
        self.config = config_lib.validate(config)
        self.workdir = workdir
        self.strategy = make_strategy(strategy)
        self.interrupted = None  # The signal number once SIGTERM/SIGINT arrived.
        # On several workers a signal is first only pending here; `sync_interrupted` turns it into
        # `interrupted` on every worker at the same step (saving is a collective).
        self.pending_signal = None
        self.stop_reason = None
        self.validator = None  # objectives.evaluator of the validation split, built on first use.
        self.read_dir = workdir  # Where checkpoints and saved statistics are read (the chief's).
        workdir = self._place_worker(workdir)
        workdir_lib.check_writable(workdir)
        self.lock = workdir_lib.WorkdirLock(workdir)
        if not self.is_chief:
            self._clear_scratch()
        try:
            self._setup(force_resume)
        except BaseException:
            self.lock.release()  # A run that failed to start leaves the workdir free.
            raise

    def _place_worker(self, workdir):
        """Multi-worker runs: worker 0 (the chief) writes `workdir`; worker i > 0 writes a scratch
        directory `<workdir>/.worker-<i>` (its saves are still needed: saving is collective) and
        reads checkpoints from `workdir`. Returns the directory this process writes."""
        from avrnn_tf import multi_worker

        self.collective = None  # Chief-decides-for-all helper on several workers.
        self.worker_index, self.num_workers = 0, 1
        if multi_worker.is_multi_worker(self.strategy):
            self.worker_index = multi_worker.worker_index(self.strategy)
            self.num_workers = multi_worker.num_workers(self.strategy)
            self.collective = multi_worker.Collective(self.strategy)
            if self.worker_index > 0:
                self.workdir = multi_worker.scratch_dir(workdir, self.worker_index)
        replicas = self.strategy.num_replicas_in_sync
        if self.config.data.batch_size % replicas:
            raise config_lib.ConfigError(
                f"config.data.batch_size = {self.config.data.batch_size} is the global batch, split "
                f"evenly over the {replicas} replicas of the {type(self.strategy).__name__}; use a "
                f"multiple of {replicas}")
        return self.workdir

    @property
    def is_chief(self):
        return self.worker_index == 0

    def _clear_scratch(self):
        """Empties a non-chief worker's scratch directory (what an earlier run left), keeping its lock."""
        import shutil

        for name in os.listdir(self.workdir):
            path = os.path.join(self.workdir, name)
            if name != ".lock":
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)

    def sync_interrupted(self, step=None):
        """On several workers, a signal received by any worker stops all of them at the same step
        (stopping saves a checkpoint, a collective). One all-reduce at every step that is a
        multiple of SIGNAL_SYNC_EVERY and at every call without a step (round ends); a no-op on
        one worker, whose signal handler sets `interrupted` directly."""
        if self.collective is None or (step is not None and step % SIGNAL_SYNC_EVERY):
            return
        local = self.pending_signal or self.interrupted
        if self.collective.total(1.0 if local else 0.0) > 0 and not self.interrupted:
            self.interrupted = self.pending_signal or signal.SIGTERM
            if not self.pending_signal:
                log(f"another worker was stopped by a signal; worker {self.worker_index} stops too")

    def distribute(self, ds):
        """Prepares a training dataset for the strategy. tf.distribute splits every element along
        its first axis into the replicas' slices of the global batch, so A-VRNN's separate phase
        batches [P, B, ...] become [B, P, ...] (the trainer's `phase_axis` = 1); on several workers
        every worker builds the same global batches and keeps its own slice (DATA sharding)."""
        from avrnn_tf import multi_worker

        replicas = self.strategy.num_replicas_in_sync
        if replicas > 1 and getattr(self.trainer, "separate_batches", False) and \
                getattr(self.trainer, "num_batches_per_step", 1) > 1:
            self.trainer.phase_axis = 1
            swap = lambda v: tf.transpose(v, tf.concat([[1, 0], tf.range(2, tf.rank(v))], 0))
            ds = ds.map(lambda x, m: (swap(x), swap(m)))
        if multi_worker.is_multi_worker(self.strategy):
            multi_worker.patch_keras_fit(self.trainer)
            ds = multi_worker.shard_by_data(ds)
        return ds

    def finish_worker(self):
        """After a completed multi-worker run: logs this worker's weights digest (equal on every
        worker) and removes a non-chief worker's scratch directory."""
        from avrnn_tf import multi_worker

        if self.collective is None:
            return
        log(f"worker {self.worker_index} of {self.num_workers}: final weights digest "
            f"{multi_worker.weights_digest(self.trainer.variables)}")
        if not self.is_chief:
            import shutil

            self.lock.release()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _setup(self, force_resume):
        config, workdir = self.config, self.workdir
        data, t = config.data, config.train
        resuming = tf.train.latest_checkpoint(os.path.join(self.read_dir, "checkpoints")) is not None
        if resuming:
            diffs = workdir_lib.check_resume_config(
                self.read_dir, config.to_dict(), force_resume, config_lib.base_config().to_dict())
            if diffs:
                log("resuming with a changed config (--force_resume): " + "; ".join(diffs))
        if t.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.data = train_data.TrainingData(config, workdir, self.read_dir, resuming, log)

        # Same initial weights on every start of the run. Only the initialisers need the seed:
        # TensorFlow's global seed is cleared again because, once set, it breaks tf.data's
        # shuffle with tensor seeds (the streamed pipeline's per-epoch shuffle).
        with self.strategy.scope():  # Variables and optimizers live on the strategy's devices.
            keras.utils.set_random_seed(t.seed)
            self.network = registry.create_network(config_lib.model_spec(
                config, data.frame_size, emission_bias_for(config, self.data.corpus)))
            self.trainer = build_trainer(config, self.network)
            self.average = averaging.maybe_create(t.ema_decay, self.network.trainable_variables)
        tf.random.set_seed(None)
        self.checkpoints = checkpointing.Checkpointer(
            self.network, self.trainer, workdir, self.read_dir, t.keep_checkpoints,
            self.collective, log, self.average)
        self.checkpoints.check_disk(workdir)
        self.writer = (tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
                       if self.is_chief else tf.summary.create_noop_writer())
        self.sampler = tf.function(self.network.sample, autograph=False)
        self.callbacks = []  # callbacks.RunCallback objects (set by `_train`).

    @property
    def step(self):
        return int(self.trainer.optimizer.iterations.numpy())

    def restore(self):
        """Restores the newest readable checkpoint (checkpointing.py); returns the step."""
        self.checkpoints.restore()
        return self.check_same_step()

    def check_same_step(self):
        """On several workers, checks that every worker restored the chief's step; returns it."""
        if self.collective is not None:
            chief = int(self.collective.broadcast(self.step))
            if self.collective.total(float(self.step != chief)) > 0:
                raise workdir_lib.WorkdirError(
                    f"the workers restored different checkpoints (the chief step {chief}, worker "
                    f"{self.worker_index} step {self.step}); every worker must see the chief's "
                    f"{os.path.join(self.read_dir, 'checkpoints')!r} (a shared filesystem)")
        return self.step

    def save(self):
        """A checkpoint of the current step (checkpointing.Checkpointer.save); a failed write
        stops the run with exit status 4."""
        try:
            return self.checkpoints.save()
        except checkpointing.SaveFailed as e:
            raise TrainingStopped(str(e), exit_code=4) from None

    @property
    def criterion(self):
        """The validation metric that chooses the best checkpoint: the bound the run trains, per
        frame (A-VRNN: the ELBO; Z-Forcing: without its auxiliary cost)."""
        return f"{self.config.train.objective}_per_frame"

    def save_best(self, valid_loss):
        """checkpoints/best/ at the lowest `valid_loss` (-criterion; best.json records it)."""
        try:
            self.checkpoints.save_best(
                valid_loss, os.path.join(self.workdir, "checkpoints", "best.json"), self.criterion)
        except checkpointing.SaveFailed as e:
            raise TrainingStopped(str(e), exit_code=4) from None

    def save_config(self):
        text = config_lib.to_json(self.config)
        for name in ("config.json", f"config.{self.step}.json"):
            workdir_lib.atomic_write_text(os.path.join(self.workdir, name), text)

    # ---------------------------------------------------------------------- evaluation
    def validation_metrics(self):
        """The trainer's held-out metrics (`objectives.evaluate`: the names its `test_step`
        reports, as exact ratios of sums over the validation batches).

        Computed with one tf.function on the variables' primary copies rather than through
        `fit`'s distributed `evaluate`, so validation is the same code and the same numbers for
        every tf.distribute strategy (the noise is the evaluation noise of `test_step`).
        """
        if self.validator is None:  # Traced on the first round, reused by every later one.
            self.validator = objectives.evaluator(self.trainer.objective, self.network,
                                                  self.trainer.seed)
        return self.validator(self.data.valid_batches)

    def evaluate(self):
        """Validation metrics, handed to every callback's `on_evaluate`; keeps the best checkpoint
        and counts the round for early stopping and the plateau decay (ValidationCounters)."""
        with averaging.averaged(self.average):  # Validated, summarised and kept: the average.
            result = self.validation_metrics()
            for callback in self.callbacks:
                callback.on_evaluate(result)
            t, loss = self.config.train, -float(result[self.criterion])
            self.save_best(loss)
        _, factor = self.checkpoints.validation.record(loss, self.step, t,
                                                       config_lib.kl_anneal_end(self.config))
        if factor:
            self.decay_learning_rates(factor)
        return result

    def decay_learning_rates(self, factor):
        """The plateau decay: every optimizer of the trainer (A-VRNN: the reconstruction, critic
        and adversarial phases' alike, so their ratios stay as configured) gets its learning rate
        multiplied by `factor`, none below train.min_learning_rate (a rate already below it stays);
        one log line. The rates are checkpointed variables of the optimizers."""
        changes = []
        for name, optimizer in self.trainer.named_optimizers().items():
            old = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            new = max(old * factor, self.config.train.min_learning_rate)
            if new < old:
                optimizer.learning_rate = new
                changes.append((name, f"{old:.3g} -> {new:.3g}"))
        if changes:
            rates = (f"learning rate {changes[0][1]}" if len(changes) == 1 else
                     "learning rates " + ", ".join(f"{name} {change}" for name, change in changes))
            log(f"validation {self.criterion} has not improved for "
                f"{self.config.train.lr_plateau_patience} rounds: {rates}")

    def generate(self, num, seconds, seed):
        """Waveforms [num, samples] in [-1, 1] sampled from the model (de-standardized)."""
        frame_size = self.config.data.frame_size
        frames = max(1, int(round(seconds * self.data.corpus.sample_rate / frame_size)))
        with averaging.averaged(self.average):
            out = self.sampler(num, frames, tf.constant([seed, 7], tf.int32))
        wave = self.data.standardizer.invert(tf.reshape(out, [num, -1]).numpy())
        return np.clip(wave, -1.0, 1.0).astype(np.float32)

    def clip_figures(self, waves):
        """Labelled figures of clips `generate` made at this step (its seed is the step)."""
        model = f"{self.config.model.kind}/{self.config.model.emission}"
        return figures.clip_figures(waves, self.data.corpus.sample_rate, model, self.step, self.step)

    def write_sample_files(self):
        import soundfile

        t = self.config.train
        if not t.num_final_samples or self.data.corpus.binary or not self.is_chief:
            return []
        folder = os.path.join(self.workdir, "samples")
        os.makedirs(folder, exist_ok=True)
        paths = []
        waves = self.generate(t.num_final_samples, max(t.audio_seconds, 1.0), seed=self.step)
        for k, (wave, figure) in enumerate(zip(waves, self.clip_figures(waves))):
            path = os.path.join(folder, f"step_{self.step}_{k}.wav")
            soundfile.write(path, wave, self.data.corpus.sample_rate, subtype="PCM_16")
            figures.save(figure, path[:-len(".wav")] + ".png")
            paths.append(path)
        return paths


class StepControl(keras.callbacks.Callback):
    """Per-step control inside `fit`: signal agreement, the divergence stop, checkpoints.

    Runs after callbacks.TrainScalars (which logs the step that stops a diverged run) and before
    the other summaries.
    """

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_train_batch_end(self, batch, logs=None):
        run, t = self.run, self.run.config.train
        if run.average is not None:  # Before anything reads or saves this step's average.
            run.average.update()
        step = run.step
        run.sync_interrupted(step)
        if logs and int(logs.get("nonfinite_streak", 0)) >= t.max_nonfinite_steps:
            run.stop_reason = (
                f"{int(logs['nonfinite_streak'])} consecutive steps had a non-finite loss or "
                f"gradient (up to step {step}); their updates were skipped, so the weights are "
                f"those of the last good step. Last checkpoint: {run.checkpoints.latest}. "
                "Lower train.learning_rate or train.clip_norm, or check the data")
            self.model.stop_training = True
            return
        # A round's last step is saved by the loop after its validation pass (the checkpoint then
        # holds that pass's early-stopping counters), unless a signal stops the run first.
        round_end = step % t.eval_every == 0 or step >= t.steps
        if (step % t.checkpoint_every == 0 and not round_end) or run.interrupted:
            run.save()
        if run.interrupted:
            self.model.stop_training = True


def train_and_evaluate(config, workdir, verbose="auto", force_resume=False, strategy="default",
                       callbacks=()):
    """Trains (or resumes) the run in `workdir` up to `config.train.steps` steps.

    `callbacks`: more `callbacks.RunCallback` classes (diagnostics), each built with the run and
    called by `fit` after the summaries and on every validation pass.

    Returns a dict with the final step, the last validation metrics and the written sample files.
    Raises TrainingStopped when a signal, non-finite steps or a failing save stopped the run early,
    workdir.WorkdirError when the workdir cannot be used, and ConfigError / DataError for bad input
    (all before anything in the workdir is overwritten).
    """
    run = Run(config, workdir, force_resume, strategy)
    try:
        result = _train(run, verbose, callbacks)
        run.finish_worker()
        return result
    finally:
        run.writer.flush()
        run.lock.release()


def _train(run, verbose, extra_callbacks):
    config, t = run.config, run.config.train
    step = run.restore()
    first, rest = callbacks_lib.summary_callbacks(run)
    rest += [make(run) for make in extra_callbacks]
    run.callbacks = first + rest
    fit_callbacks = first + [StepControl(run)] + rest + progress.callbacks(verbose, t)
    run.save_config()
    if run.is_chief:
        run_summary.write(run.writer, config, step)
    log(f"{config.model.kind}/{config.model.emission} on {run.data.corpus.source}: "
        f"{run.data.corpus.sizes()} sequences "
        f"{'of binary frames' if getattr(run.data.corpus, 'binary', False) else f'at {run.data.corpus.sample_rate} Hz'}, "
        f"{run.data.num_train_chunks} training "
        f"chunks; {sum(int(np.prod(v.shape)) for v in run.network.trainable_variables):,} "
        f"parameters; steps {step} -> {t.steps}; workdir {os.path.abspath(run.workdir)}")
    for note in config_lib.recipe_notes(config):
        log(note)

    def on_signal(signum, frame):
        if run.interrupted or run.pending_signal:  # A second signal: stop now (the last
            raise KeyboardInterrupt                 # checkpoint stays valid).
        if run.collective is None:
            run.interrupted = signum
            log(f"received {signal.Signals(signum).name}: finishing the current step, then saving")
        else:  # Acted on by every worker at the next agreement (sync_interrupted).
            run.pending_signal = signum
            log(f"received {signal.Signals(signum).name}: stopping with the other workers within "
                f"{SIGNAL_SYNC_EVERY} steps, then saving")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    counters = run.checkpoints.validation
    try:
        result = {}
        # Step 0, or a round whose validation a signal or a kill cut off: validate it now.
        if (step % t.eval_every == 0 or step >= t.steps) and int(counters.evaluated.numpy()) != step:
            result = run.evaluate()
        total_rounds = math.ceil(t.steps / t.eval_every)
        run.sync_interrupted()
        while step < t.steps and not run.interrupted and not stopped_early(run, step):
            n = min(t.eval_every - step % t.eval_every, t.steps - step)
            ds = run.distribute(run.data.dataset(run.trainer, step))
            run.trainer.fit(ds, epochs=step // t.eval_every + 1, initial_epoch=step // t.eval_every,
                            steps_per_epoch=n, callbacks=fit_callbacks, verbose=0,
                            shuffle=False)
            run.sync_interrupted()
            step = run.step
            if run.stop_reason:
                raise TrainingStopped(f"training stopped: {run.stop_reason}", exit_code=3)
            if run.interrupted:
                break
            result = run.evaluate()
            log(f"step {step}/{t.steps} (round {math.ceil(step / t.eval_every)}/{total_rounds}): "
                + ", ".join(f"valid {k} {v:.4f}" for k, v in result.items()))
            if step % t.checkpoint_every == 0:
                run.save()
            run.sync_interrupted()
        saved = run.save()
        if run.interrupted:
            name = signal.Signals(run.interrupted).name
            raise TrainingStopped(
                f"stopped by {name} at step {run.step}; checkpoint {saved} saved; rerun the same "
                "command to resume", exit_code=128 + run.interrupted)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    samples = run.write_sample_files()
    if samples:
        log(f"wrote {len(samples)} generated clip(s) (WAV, and a PNG of each) to "
            f"{os.path.dirname(samples[0])}")
    log(f"done at step {run.step}; TensorBoard: tensorboard --logdir "
        f"{os.path.dirname(os.path.normpath(run.read_dir)) or '.'}")
    return {"step": run.step, "valid": {k: float(v) for k, v in result.items()}, "samples": samples,
            "stopped_early": run.checkpoints.validation.stopped(t.early_stopping_patience)}


def stopped_early(run, step):
    """Whether early stopping ends the run at `step` (logged once per invocation)."""
    patience = run.config.train.early_stopping_patience
    if not run.checkpoints.validation.stopped(patience):
        return False
    log(f"early stopping at step {step}: validation {run.criterion} has not improved for "
        f"{patience} rounds (train.early_stopping_patience); the best checkpoint is in "
        f"{os.path.join(run.read_dir, 'checkpoints', 'best')}")
    return True
