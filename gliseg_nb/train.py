"""Training a U-Net that survives interruption (report chapter 7).

`fit` trains the model `gliseg_nb.model.build_unet` describes, with the report's optimiser
and schedule (Adam, learning rate divided by 5 when the validation loss stalls for 2 epochs,
down to 1e-6), early stopping, and the epoch-accumulated metrics of
`gliseg_nb.metrics.keras_metrics`. Everything goes into one run folder, laid out and
locked by `gliseg_nb.runs.RunFolder`: ``config.json``, ``split.json``, ``run.json``,
``history.csv``, ``best.keras``, ``last-epoch-NNN.keras`` and ``state.json``. One process
trains into a folder at a time; a second one gets a `gliseg_nb.RunError` naming the first.

**Resume.** ``state.json`` is the commit point of an epoch: it names the checkpoint of the
last finished epoch and holds the state of the callbacks (learning-rate schedule, early
stopping, best score). Kill the process at any moment and call `fit` (or run the same
``gliseg-nb train`` command) again: it reloads that checkpoint and continues from the next
epoch; rows of ``history.csv`` from an epoch that did not reach its commit are dropped, so
every epoch appears exactly once. The resumed run is not bit-for-bit the uninterrupted
one (the data shuffling starts afresh), but no epoch is lost or repeated.
"""

from __future__ import annotations

import os
import platform
import warnings
from pathlib import Path

import keras

from ._io import output_folder, user_path
from .config import Config
from .errors import ConfigError, DataError, RunError

# The run folder's layout has one owner, gliseg_nb.runs; the file names stay importable from
# here for code written against earlier versions.
from .runs import (  # noqa: F401
    BEST_MODEL_FILE,
    CONFIG_FILE,
    HISTORY_FILE,
    RUN_FILE,
    SPLIT_FILE,
    STATE_FILE,
    RunFolder,
    read_history,
)
from .runs import truncate_history as _truncate_history  # noqa: F401

__all__ = [
    "fit",
    "train_run",
    "choose_strategy",
    "parse_overrides",
    "read_history",
    "region_dice",
    "RunCheckpoint",
]

#: Metric that picks the best checkpoint (mean Dice of the tumour classes on validation).
BEST_MONITOR = "val_dice_mean"


# -- hardware ----------------------------------------------------------------------------------
def choose_strategy():
    """The `tf.distribute` strategy for the hardware found.

    * a TPU (Colab or Cloud TPU VM): ``TPUStrategy``;
    * several GPUs: ``MirroredStrategy`` over them (each batch split between the GPUs);
    * no GPU but several logical CPU devices (set up deliberately with
      ``tf.config.set_logical_device_configuration``): ``MirroredStrategy`` over those;
    * otherwise the default strategy: one device, no change.

    Returns
    -------
    strategy : tf.distribute.Strategy
    description : str
        E.g. ``"default (1 CPU)"`` or ``"MirroredStrategy (2 GPU)"``.
    """
    import tensorflow as tf

    tpu = _tpu_strategy()
    if tpu is not None:
        return tpu, f"TPUStrategy ({tpu.num_replicas_in_sync} cores)"
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus]), f"MirroredStrategy ({len(gpus)} GPU)"
    cpus = tf.config.list_logical_devices("CPU")
    if not gpus and len(cpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in cpus]), f"MirroredStrategy ({len(cpus)} CPU)"
    kind = "GPU" if gpus else "CPU"
    return tf.distribute.get_strategy(), f"default (1 {kind})"


def _tpu_strategy():
    """A TPUStrategy when a TPU is attached, else None (quickly, without network calls)."""
    import tensorflow as tf

    hints = ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE")
    if not any(os.environ.get(name) for name in hints) and not Path("/dev/accel0").exists():
        return None
    try:
        address = os.environ.get("TPU_NAME") or ("grpc://" + os.environ["COLAB_TPU_ADDR"]
                                                 if os.environ.get("COLAB_TPU_ADDR") else "local")
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        if address != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        warnings.warn(f"a TPU seems present but could not be initialised ({error}); using the default device",
                      stacklevel=3)
        return None


# -- the checkpoint/resume callback -------------------------------------------------------------
def _callback_state(callback, names):
    state = {}
    for name in names:
        value = getattr(callback, name, None)
        if hasattr(value, "item"):  # NumPy scalars from Keras' comparisons
            value = value.item()
        state[name] = value
    return state


_REDUCE_LR_FIELDS = ("wait", "best", "cooldown_counter")
_EARLY_STOPPING_FIELDS = ("wait", "best", "best_epoch")


class RunCheckpoint(keras.callbacks.Callback):
    """Save the best model, the last epoch's model and the run state, atomically, every epoch.

    Put it **last** in the callback list: it records the state the other callbacks reached
    at the end of the epoch (and restores it when training resumes).

    Parameters
    ----------
    out_dir : pathlib.Path or gliseg_nb.runs.RunFolder
        The run folder.
    monitor : str, default="val_dice_mean"
        Logged value that picks ``best.keras``.
    mode : {"max", "min"}, default="max"
        Whether a higher or lower `monitor` is better.
    reduce_lr, early_stopping : keras.callbacks.Callback, optional
        Callbacks whose counters are saved and restored. Default=None.
    state : dict, optional
        A state read from ``state.json`` to resume from; default=None starts afresh.
    """

    def __init__(self, out_dir, monitor=BEST_MONITOR, mode="max", reduce_lr=None, early_stopping=None, state=None):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.run = out_dir if isinstance(out_dir, RunFolder) else RunFolder(out_dir)
        self.out_dir = self.run.path
        self.monitor = monitor
        self.mode = mode
        self.reduce_lr = reduce_lr
        self.early_stopping = early_stopping
        self.state = dict(state or {})
        self.best = self.state.get("best", {}).get("value")

    def on_train_begin(self, logs=None):
        # Runs after the other callbacks' on_train_begin (which reset their counters).
        if self.reduce_lr is not None and "reduce_lr" in self.state:
            for name, value in self.state["reduce_lr"].items():
                setattr(self.reduce_lr, name, value)
        if self.early_stopping is not None and "early_stopping" in self.state:
            for name, value in self.state["early_stopping"].items():
                setattr(self.early_stopping, name, value)

    def _improved(self, value):
        if value is None or value != value:  # missing or NaN
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        value = None if value is None else float(value)
        if self._improved(value):
            self.best = value
            self.state["best"] = {"monitor": self.monitor, "value": value, "epoch": epoch}
            self.run.save_model(self.model, self.run.best_model_path)
        elif value is None and "best" not in self.state:
            warnings.warn(f"{self.monitor} is not logged; best.keras is not written", stacklevel=2)

        previous = self.state.get("last_checkpoint")
        checkpoint = self.run.checkpoint_path(epoch).name
        self.run.save_model(self.model, self.run.checkpoint_path(epoch))
        self.state.update(
            epochs_done=epoch + 1,
            last_checkpoint=checkpoint,
            stopped_early=bool(getattr(self.model, "stop_training", False)),
            last_logs={key: float(val) for key, val in logs.items()},
        )
        if self.reduce_lr is not None:
            self.state["reduce_lr"] = _callback_state(self.reduce_lr, _REDUCE_LR_FIELDS)
        if self.early_stopping is not None:
            self.state["early_stopping"] = _callback_state(self.early_stopping, _EARLY_STOPPING_FIELDS)
        # The commit point: before this line the previous epoch is the one a resume sees.
        self.run.write_state(self.state)
        if previous and previous != checkpoint:
            (self.out_dir / previous).unlink(missing_ok=True)


# -- settings from the command line --------------------------------------------------------------
def parse_overrides(pairs):
    """Turn ``["epochs=3", "loss=dice", "class_weights=1,2,2,3"]`` into Config fields.

    Values are converted to the field's type: integers, floats, booleans
    (``true``/``false``/``1``/``0``), ``none`` for optional fields, and comma-separated
    tuples (``modalities=flair,t1ce``).

    Parameters
    ----------
    pairs : sequence of str
        ``FIELD=VALUE`` strings.

    Returns
    -------
    dict

    Raises
    ------
    gliseg_nb.ConfigError
        For a pair without ``=``, an unknown field or a value that cannot be converted.
    """
    import dataclasses

    defaults = Config()
    fields = {field.name: field for field in dataclasses.fields(Config)}
    overrides = {}
    for pair in pairs:
        name, separator, text = pair.partition("=")
        name, text = name.strip(), text.strip()
        if not separator or not name:
            raise ConfigError(f"--set expects FIELD=VALUE, got {pair!r}")
        if name not in fields or name == "preset":
            raise ConfigError(f"--set: unknown setting {name!r}; known: {', '.join(sorted(set(fields) - {'preset'}))}")
        field_type = str(fields[name].type)
        default = getattr(defaults, name)
        if text.lower() in ("none", "null") and "None" in field_type:
            overrides[name] = None
        elif isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"--set {name}: expected true or false, got {text!r}")
            overrides[name] = text.lower() in ("true", "1", "yes")
        elif field_type.startswith("tuple"):
            items = [item.strip() for item in text.split(",") if item.strip()]
            converted = []
            for item in items:
                try:
                    converted.append(float(item) if name in ("split", "class_weights") else item)
                except ValueError as error:
                    raise ConfigError(f"--set {name}: {item!r} is not a number") from error
            overrides[name] = tuple(converted)
        else:
            kind = int if isinstance(default, int) or field_type.startswith("int") else type(default)
            try:
                overrides[name] = kind(text)
            except ValueError as error:
                raise ConfigError(f"--set {name}: cannot read {text!r} as {kind.__name__}") from error
    return overrides


# -- training --------------------------------------------------------------------------------------
def _case_ids(cases):
    return [case if isinstance(case, str) else case.case_id for case in cases]


def _check_resumable(run, config):
    """The saved state if `run` holds a run with these settings, None for a fresh run."""
    state = run.read_state()
    if state is None:
        return None
    saved = Config.load(run.config_path)
    # Only the number of epochs may change between runs (to train a finished run longer).
    if saved.replace(epochs=config.epochs) != config:
        different = sorted(k for k, v in config.to_dict().items() if saved.to_dict()[k] != v and k != "epochs")
        raise ConfigError(
            f"{run.path} holds a run with other settings ({', '.join(different)}); resume with the same "
            f"settings or choose another output folder"
        )
    run.check_checkpoint()
    return state


def _write_run_info(run, strategy_description, resumed_at):
    import tensorflow as tf

    from . import __version__

    info = run.read_run_info()
    info.update(
        gliseg_nb_version=__version__,
        tensorflow_version=tf.__version__,
        keras_version=keras.__version__,
        python_version=platform.python_version(),
        strategy=strategy_description,
    )
    info.setdefault("sessions", []).append({"initial_epoch": resumed_at})
    run.write_run_info(info)


def _record_split(run, split, train_cases, val_cases):
    from .split import load_split, save_split

    path = run.split_path
    if split is None:
        split = {"train": _case_ids(train_cases), "val": _case_ids(val_cases), "test": []}
    if path.is_file():
        saved = load_split(path)
        if sorted(saved["train"]) != sorted(_case_ids(train_cases)) or sorted(saved["val"]) != sorted(
            _case_ids(val_cases)
        ):
            raise ValueError(f"{path}: the run was started with other training or validation cases")
        return path
    return save_split(split, path)


def _compile(model, config):
    from .losses import get_loss
    from .metrics.keras_metrics import default_metrics

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=get_loss(config),
        metrics=default_metrics(config.n_classes, outputs=config.outputs),
        jit_compile=_jit_compile(config),
    )
    return model


def _jit_compile(config):
    # `jit_compile` means XLA on TensorFlow, where steps run as graphs either way. On JAX
    # a step that is not jitted runs op by op (measured on an H100: 0.5 s per step at any
    # batch size), so there it is always compiled.
    return True if keras.backend.backend() == "jax" else bool(config.jit_compile)


def _precision_policy(config, strategy_description):
    if not config.mixed_precision:
        return "float32"
    if "TPU" in strategy_description:
        return "mixed_bfloat16"
    if "GPU" in strategy_description:
        return "mixed_float16"
    warnings.warn("mixed_precision=True needs a GPU or TPU (float16 is slow on CPUs); training in float32",
                  stacklevel=3)
    return "float32"


def _fit_datasets(config, train_data, val_data, out_dir, *, split=None, train_cases=(), val_cases=(),
                  callbacks=None, verbose="auto"):
    """`fit` on ready-made datasets: ``(x, y)`` batches, a ``tf.data.Dataset`` or a PyDataset.

    `train_data` / `val_data` may also be callables returning the dataset, called inside
    the distribution strategy's scope. The run folder's lock is held throughout: a second
    training into the same folder raises `gliseg_nb.RunError`.
    """
    if not isinstance(config, Config):
        raise ConfigError(f"fit expects a gliseg_nb.Config, got {type(config).__name__}")
    with RunFolder(out_dir).locked() as run:
        return _fit_locked(config, train_data, val_data, run, split=split, train_cases=train_cases,
                           val_cases=val_cases, callbacks=callbacks, verbose=verbose)


def _fit_locked(config, train_data, val_data, run, *, split, train_cases, val_cases, callbacks, verbose):
    import tensorflow as tf

    from ._progress import TrainingProgress, progress_mode
    from .model import build_unet

    out_dir = run.path
    state = _check_resumable(run, config)
    initial_epoch = int(state["epochs_done"]) if state else 0
    history_path = run.history_path
    if train_cases or val_cases or split is not None:
        _record_split(run, split, train_cases, val_cases)

    if state and (state.get("stopped_early") or initial_epoch >= config.epochs):
        # Nothing left to do: hand back the finished run.
        why = "stopped early" if state.get("stopped_early") else f"reached {initial_epoch} epochs"
        print(f"{out_dir}: training already finished ({why}); nothing to train, loading {state['last_checkpoint']}")
        from . import load_model

        return load_model(run.last_checkpoint()), run.read_history()

    config.save(run.config_path)

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy, strategy_description = choose_strategy()
    _write_run_info(run, strategy_description, initial_epoch)

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(_precision_policy(config, strategy_description))
    try:
        with strategy.scope():
            model = _compile(build_unet(config), config)
            # Adam's moment variables made now, not inside the first step: otherwise
            # TensorFlow traces the training step twice (once to create them), about 8 s of
            # the first epoch on two CPU cores. A resumed run also needs them to exist before
            # its saved state can be loaded.
            model.optimizer.build(model.trainable_variables)
            if state:
                try:
                    model.load_weights(run.last_checkpoint())
                except (OSError, ValueError) as error:  # sound as a zip, yet not this model's
                    raise RunError(f"{run.last_checkpoint()}: cannot resume from this checkpoint ({error}); "
                                   f"delete {out_dir} to train from scratch") from error
                run.truncate_history(initial_epoch)
                print(f"Resuming {out_dir} at epoch {initial_epoch + 1}/{config.epochs} "
                      f"(learning rate {float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)):.2g})")
            train_data = train_data() if callable(train_data) else train_data
            val_data = val_data() if callable(val_data) else val_data

        mode = progress_mode(verbose)
        reduce_lr = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.2, patience=2, min_lr=1e-6, verbose=int(mode is not None)
        )
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, verbose=int(mode is not None)
        )
        checkpoint = RunCheckpoint(run, reduce_lr=reduce_lr, early_stopping=early_stopping, state=state)
        # Order matters: the schedule updates the learning rate (and logs it) before the CSV
        # row is written, and RunCheckpoint, last, commits what all the others did.
        callback_list = [
            # First, so that the epoch's line is printed before the schedule's messages.
            *([TrainingProgress(mode)] if mode else []),
            reduce_lr,
            early_stopping,
            keras.callbacks.CSVLogger(str(history_path), append=bool(state)),
            *(callbacks or []),
            checkpoint,
        ]
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=config.steps_per_epoch,
            shuffle=False,  # make_dataset shuffles across patients itself
            callbacks=callback_list,
            verbose=0,  # TrainingProgress shows the compact line instead of Keras' bar
        )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    state = run.read_state()
    state["finished"] = True
    run.write_state(state)
    return model, run.read_history()


def fit(config, train_cases, val_cases, out_dir, cache_dir=None, verbose="auto", *, split=None, callbacks=None):
    """Train a U-Net on cases, with checkpoints that let an interrupted run resume.

    Parameters
    ----------
    config : Config
        Model (``base_filters``, ``depth``, ...), data (``image_size``, ``batch_size``, ...)
        and training settings (``loss``, ``learning_rate``, ``epochs``, ``steps_per_epoch``,
        ``early_stopping_patience``, ``seed``, ``deterministic``, ``mixed_precision``,
        ``jit_compile``).
    train_cases, val_cases : sequence of gliseg_nb.data.Case
        Training and validation patients (with segmentations).
    out_dir : str or pathlib.Path
        The run folder (see the module docstring). If it holds a run with the same settings,
        training resumes after its last finished epoch; ``epochs`` may be raised to train a
        finished run further. Other settings raise ValueError.
    cache_dir : str or pathlib.Path, optional
        Slice cache of `gliseg_nb.dataset.make_dataset`; default=None uses its default.
    verbose : "auto", 0, 1 or 2, default="auto"
        Progress (`gliseg_nb._progress`): epoch, step, loss and the region Dice. 1: one
        line that updates itself (a terminal, a notebook); 2: one plain line per epoch (a
        log file); "auto": 1 on a terminal or in a notebook, else 2; 0: nothing.
    split : dict, optional
        A split (`gliseg_nb.split.split_cases`) to save as ``split.json``; default=None
        records the case ids of `train_cases` and `val_cases`.
    callbacks : list of keras.callbacks.Callback, optional
        Extra callbacks, run before the checkpoint of each epoch. Default=None.

    Returns
    -------
    model : keras.Model
        The model after the last epoch (``best.keras`` holds the best one).
    history : dict
        Every epoch of the run, resumed sessions included (`read_history`).

    Raises
    ------
    gliseg_nb.RunError
        If another process is training into `out_dir` (its lock, `gliseg_nb.runs.RunFolder`,
        is held), or the checkpoint a resume needs is missing, empty or truncated.
    gliseg_nb.ConfigError
        If `out_dir` holds a run with other settings.
    """
    from .dataset import make_dataset

    train_cases, val_cases = list(train_cases), list(val_cases)
    if not train_cases or not val_cases:
        raise ValueError(f"fit needs training and validation cases, got {len(train_cases)} and {len(val_cases)}")
    overlap = set(_case_ids(train_cases)) & set(_case_ids(val_cases))
    if overlap:
        raise ValueError(f"case(s) both in training and validation: {', '.join(sorted(overlap)[:10])}")
    from ._progress import progress_mode

    # The slice cache's progress bars redraw themselves: only where a live line can.
    progress = progress_mode(verbose) == "live"

    def train_data():
        dataset = make_dataset(train_cases, config, training=True, cache_dir=cache_dir, progress=progress)
        # A fixed number of steps per epoch needs a stream that never runs out.
        return dataset.repeat() if config.steps_per_epoch else dataset

    def val_data():
        return make_dataset(val_cases, config, training=False, cache_dir=cache_dir, progress=progress)

    return _fit_datasets(config, train_data, val_data, out_dir, split=split, train_cases=train_cases,
                         val_cases=val_cases, callbacks=callbacks, verbose=verbose)


# -- scoring by region -------------------------------------------------------------------------------
def region_dice(model, cases, config, batch_size=None):
    """Mean per-case Dice of the regions WT, TC and ET on the selected slices of `cases`.

    Each case's slices (preprocessed as for training) are segmented, stacked into a volume
    and scored by BraTS region (WT = classes 1+2+3, TC = 1+3, ET = 3); the scores are then
    averaged over cases. A quick check during the course; whole volumes on their original
    grid are scored by `gliseg_nb.metrics.evaluation`.

    Parameters
    ----------
    model : keras.Model
    cases : sequence of gliseg_nb.data.Case
    config : Config
    batch_size : int, optional
        Default=None: ``config.batch_size``.

    Returns
    -------
    dict
        ``{"WT": float, "TC": float, "ET": float, "per_case": {case_id: {region: dice}}}``.
    """
    import numpy as np

    from .labels import REGIONS, decode_outputs
    from .metrics.evaluation import dice_score
    from .preprocessing import preprocess_case

    per_case = {}
    for case in cases:
        x, y = preprocess_case(case, config)
        if y is None:
            raise ValueError(f"case {case.case_id} has no segmentation to score against")
        outputs = model.predict(x, batch_size=batch_size or config.batch_size, verbose=0)
        predicted = decode_outputs(outputs, config.outputs)
        per_case[case.case_id] = {
            region: dice_score(np.isin(predicted, classes), np.isin(y, classes))
            for region, classes in REGIONS.items()
        }
    means = {region: float(np.mean([scores[region] for scores in per_case.values()])) for region in REGIONS}
    return {**means, "per_case": per_case}


# -- the command -------------------------------------------------------------------------------------
def train_run(data_dir=None, out="runs/quick", *, preset="quick", overrides=None):
    """Train on a BraTS folder the way ``gliseg-nb train`` does, printing its progress.

    Splits the cases 68/20/12 by patient (`gliseg_nb.split.split_cases`, saved as
    ``split.json``; a resumed run reuses the saved split), trains with `fit`, then prints the
    validation Dice per region of the best model.

    Parameters
    ----------
    data_dir : str or pathlib.Path or None, default=None
        BraTS folder in any layout; None uses the embedded synthetic dataset.
    out : str or pathlib.Path, default="runs/quick"
        The run folder (``~`` expanded). Run the same call again to resume.
    preset : {"quick", "report"}, default="quick"
        Settings preset (`gliseg_nb.Config.preset`).
    overrides : dict or None, default=None
        Config fields to change, e.g. ``{"epochs": 3}`` (`parse_overrides` reads them from
        ``FIELD=VALUE`` strings).

    Returns
    -------
    pathlib.Path
        The run folder.

    Raises
    ------
    gliseg_nb.ConfigError
        For an unknown preset or an invalid setting.
    gliseg_nb.DataError
        If `data_dir` holds fewer than two cases with segmentations.
    gliseg_nb.RunError
        If `out` cannot be used as a run folder (a file, or not writable).
    """
    import time

    from .data import find_cases, get_data_dir
    from .split import load_split, select_cases, split_cases

    config = Config.preset(preset, **dict(overrides or {}))
    if data_dir is not None and user_path(data_dir).is_file():
        raise DataError(f"{user_path(data_dir)}: is a file; train needs the folder holding the BraTS cases")
    data_dir = get_data_dir(data_dir)
    cases = [case for case in find_cases(data_dir) if case.seg is not None]
    if len(cases) < 2:
        raise DataError(f"{data_dir}: training needs at least 2 cases with segmentations, found {len(cases)}")
    # Checked before any work: a run folder that cannot be written fails now, not after an epoch.
    out_dir = output_folder(out, what="run folder")
    split_path = out_dir / SPLIT_FILE
    split = load_split(split_path, cases) if split_path.is_file() else split_cases(cases, config)
    train_cases, val_cases = select_cases(cases, split["train"]), select_cases(cases, split["val"])
    print(f"Data: {data_dir} ({len(train_cases)} training, {len(val_cases)} validation, "
          f"{len(split['test'])} test cases); run folder: {out_dir}")

    epochs_before = RunFolder(out_dir).epochs_done()
    started = time.perf_counter()
    model, history = fit(config, train_cases, val_cases, out_dir, split=split)
    elapsed = time.perf_counter() - started
    from . import load_model

    best_path = out_dir / BEST_MODEL_FILE
    best = load_model(best_path, compile=False) if best_path.is_file() else model
    scores = region_dice(best, val_cases, config)
    trained = len(history.get("epoch", [])) - epochs_before
    print(f"Trained {trained} epoch(s) in {elapsed:.0f} s this session." if trained > 0 else
          f"The run was already complete ({epochs_before} epoch(s)); nothing was trained this session.")
    print("Validation Dice of the best model: "
          + ", ".join(f"{region} {scores[region]:.3f}" for region in ("WT", "TC", "ET")))
    print(f"Best model: {best_path}; history: {out_dir / HISTORY_FILE}")
    return out_dir
