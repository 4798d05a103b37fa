"""The colorization pretext task as a LightningModule: targets on the device, loss, metrics, logging."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from ..checkpoints import non_finite_tensors
from ..core.bins import Q
from ..core.color import lab_to_rgb
from ..core.decode import DEFAULT_TEMPERATURE
from ..core.encode import DEFAULT_K, DEFAULT_SIGMA
from ..core.loss import Reduction
from ..core.metric_modules import AuC, Colourfulness, RebalancedAuC
from ..core.rebalance import rebalance_weights
from ..core.targets import ColorizationTargets, TargetBuilder
from ..models import build_model
from ..models.sync_bn import convert_to_global_batchnorm
from ..pretexts import build_pretext
from .prior_pass import estimate_data_prior, read_prior, write_prior
from .schedule import LrScaling, check_schedule, lr_factor, scaled_lr


def fused_adam(params: list[torch.nn.Parameter], **options: Any) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch and device have one (3-7x faster steps on CPUs)."""
    try:
        return torch.optim.Adam(params, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without the kernel
        return torch.optim.Adam(params, **options)


class NonFiniteLossError(RuntimeError):
    """Raised when training diverges: a NaN or infinite loss, or a checkpoint about to be written with
    non-finite weights, buffers or optimiser states (it is not written). Names the checkpoint to resume."""


class ColorizationModule(LightningModule):
    """Pretrain a colorization network (Zhang et al. 2016) on uint8 RGB batches.

    ``loss`` names the pretext (:mod:`selfsup_color.pretexts`), which sets the network's outputs, the
    loss, the decoding to ab and the default ``lam``. The paper's ablations: ``loss="classification"``
    with ``lam=0.5`` (class rebalancing, the full method), ``lam=1`` (no rebalancing), and
    ``loss="regression"`` (L2 on ab; the network then predicts 2 channels). ``lam=None`` (the
    default) means the pretext's: 0.5 for classification and 1 for regression, the paper's
    unweighted L2 baseline; an explicit ``lam < 1`` with regression gives a rebalanced L2, which
    pushes towards saturated colours. The prior over ab
    bins is read from ``prior`` (JSON or Q-line table) or, when None, estimated before training
    from ``prior_images`` training images (one DDP-aware pass), saved with the run and kept in
    every checkpoint.

    Optimiser as in the paper: Adam, betas (0.9, 0.99), L2 weight decay 1e-3, lr 3e-5 times
    ``lr_factors`` from each of ``lr_milestones`` (1/3 from 200k, 0.1 from 375k iterations), at a
    global batch of 40. ``lr_scaling`` moves ``lr`` to another global batch (``base_batch_size``).
    ``sync_batchnorm`` computes BatchNorm statistics over all DDP ranks on any device (gloo too);
    on GPUs Lightning's ``--trainer.sync_batchnorm`` (PyTorch's fused SyncBatchNorm) also works.
    """

    FIXED_HPARAMS = ("arch", "arch_options", "loss", "prior", "prior_images")
    """Settings a resumed run keeps from its checkpoint: they define the network and its outputs, or the
    prior that the checkpoint carries (a different value would be ignored, not applied)."""

    def __init__(
        self,
        arch: str = "eccv16",
        arch_options: dict[str, Any] | None = None,
        loss: str = "classification",
        lam: float | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        k: int = DEFAULT_K,
        sigma: float = DEFAULT_SIGMA,
        reduction: Reduction = "batch",
        prior: str | None = None,
        prior_images: int = 10_000,
        lr: float = 3e-5,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 1e-3,
        adam_eps: float = 1e-8,
        lr_milestones: Sequence[int] = (200_000, 375_000),
        lr_factors: Sequence[float] = (1 / 3, 0.1),
        warmup_steps: int = 0,
        lr_scaling: LrScaling = "none",
        base_batch_size: int = 40,
        compile_net: bool = False,
        compile_targets: bool = False,
        channels_last: bool = False,
        sync_batchnorm: bool = False,
        log_images_every_n_steps: int = 500,
        num_log_images: int = 8,
        check_finite_every_n_steps: int = 1,
    ) -> None:
        super().__init__()
        self.pretext = build_pretext(loss)
        if lam is None:
            lam = self.pretext.default_lam
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1] (the paper uses 0.5), got {lam}")
        if prior_images < 1:
            raise ValueError(f"prior_images must be >= 1, got {prior_images}")
        check_schedule(lr_milestones, lr_factors, warmup_steps)
        self.save_hyperparameters()
        # Under LightningCLI the saved hparams are the parsed config, where lam may be None: record
        # the value used, in checkpoints (hparams) and in what loggers log at fit start (initial).
        self.hparams.lam = self._hparams_initial.lam = lam
        self.net = build_model(arch, **self.pretext.network_options(arch_options))
        # Targets at the network's own output stride (4; 8 for alexnet, whose prototxt subsamples ab at 8).
        stride = self.net.output_stride
        self.targets = TargetBuilder(None, k=k, sigma=sigma, stride=stride, compile=compile_targets)
        # The prior travels in checkpoints; NaN means "not known yet" (estimated at fit start).
        self.register_buffer("prior_probs", torch.full((Q,), math.nan, dtype=torch.float64))
        self.val_auc, self.val_auc_gray = AuC(), AuC()
        self.val_colourfulness, self.val_colourfulness_truth = Colourfulness(), Colourfulness()
        self.val_rauc: RebalancedAuC | None = None
        self.val_rauc_gray: RebalancedAuC | None = None
        self._skipped = torch.zeros((), dtype=torch.int64)
        self._bind_forward()

    def _bind_forward(self) -> None:
        """The callable that runs the net: itself or its ``torch.compile`` wrapper.

        Kept out of the module tree (no duplicate state-dict keys); it shares the net's parameters.
        """
        net = self.net
        object.__setattr__(self, "_forward", torch.compile(net) if self.hparams.compile_net else net)

    # ------------------------------------------------------------------ prior
    @property
    def has_prior(self) -> bool:
        return bool(torch.isfinite(self.prior_probs).all())

    def _ensure_prior(self) -> None:
        """Load or estimate the prior once, then derive the class weights and the rebalanced metric."""
        if not self.has_prior:
            self._obtain_prior()
        p = self.prior_probs
        self.targets.class_weights.copy_(rebalance_weights(p, self.hparams.lam).to(self.device))
        if self.val_rauc is None:
            self.val_rauc = RebalancedAuC(p).to(self.device)
            self.val_rauc_gray = RebalancedAuC(p).to(self.device)

    def _obtain_prior(self) -> None:
        hp, trainer = self.hparams, self.trainer
        if hp.prior is not None:
            record = read_prior(hp.prior)
        else:
            rank_zero_info(f"Estimating the ab prior from {hp.prior_images} training images ...")
            record = estimate_data_prior(
                trainer.datamodule,
                hp.prior_images,
                self.device,
                hp.sigma,
                source="training images",
                stride=self.targets.stride,
            )
            if trainer.is_global_zero:
                from .loggers import log_files, log_image, run_dir

                json_path, png_path, plot = write_prior(record, run_dir(trainer) / "prior", "training prior")
                rank_zero_info(f"Prior of {record.n_images} images saved to {json_path}")
                log_image(trainer, "prior", plot)
                for logger in trainer.loggers:
                    log_files(logger, f"prior-{logger.version}", "prior", [json_path, png_path])
        self.prior_probs.copy_(record.prior.to(self.prior_probs.device))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse to write a checkpoint with a non-finite weight, buffer or optimiser state (all ranks agree).

        The run has diverged, so it stops with :class:`NonFiniteLossError`; the previous checkpoint stays.
        """
        state = {
            "state_dict": checkpoint["state_dict"],
            "optimizer_states": checkpoint.get("optimizer_states"),
        }
        bad = non_finite_tensors(state)
        if self.trainer.strategy.reduce_boolean_decision(not bad, all=True):
            return
        from .checkpoint import resume_advice

        shown = (
            ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "") or "on another rank"
        )
        raise NonFiniteLossError(
            f"non-finite training state at global step {self.global_step} (epoch {self.current_epoch}): "
            f"{shown}; stopping without writing that checkpoint; {resume_advice(self.trainer)}"
        )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rename the network keys that earlier releases wrote (``ColorizationNet.upgrade_state_dict``)."""
        checkpoint["state_dict"] = self.net.upgrade_state_dict(checkpoint["state_dict"], prefix="net.")

    def on_fit_start(self) -> None:
        self._ensure_prior()

    def on_validation_start(self) -> None:
        self._ensure_prior()

    def on_test_start(self) -> None:
        self._ensure_prior()

    # ------------------------------------------------------------------ steps
    def forward(self, lightness: Tensor) -> Tensor:
        """The pretext's outputs (logits, or ab for regression) at 1/stride resolution from L in [0, 100]."""
        lightness = lightness.to(self.dtype)  # float64 under "64-true" precision; a no-op otherwise
        if self.hparams.channels_last:
            lightness = lightness.contiguous(memory_format=torch.channels_last)
        return self._forward(lightness)

    def setup(self, stage: str) -> None:
        if self.hparams.sync_batchnorm and self.trainer.world_size > 1:
            self.net = convert_to_global_batchnorm(self.net)
            self._bind_forward()
        if self.hparams.channels_last:
            self.net.to(memory_format=torch.channels_last)

    def prepare(self, batch: dict[str, Tensor]) -> ColorizationTargets | None:
        """uint8 RGB on the device -> L, soft targets, pixel weights, non-gray mask (None if empty)."""
        rgb = batch["rgb"]
        if not rgb.shape[0]:
            return None
        with torch.autocast(rgb.device.type, enabled=False):  # exact colour maths under bf16/fp16 runs
            return self.targets(rgb)

    def _loss_and_ab(self, t: ColorizationTargets, decode: bool) -> tuple[Tensor, Tensor | None]:
        """The pretext's loss and, when ``decode``, its predicted ab (detached)."""
        out = self(t.lightness)
        loss = self.pretext.loss(out, t, self.hparams.reduction)
        return loss, self.pretext.decode(out.detach(), self.hparams.temperature) if decode else None

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        self._skipped = self._skipped.to(self.device) + batch["skipped"]
        t = self.prepare(batch)
        if t is None:  # every image was unreadable: a zero loss keeps DDP ranks in step
            return sum(p.sum() for p in self.net.parameters()) * 0.0
        every = self.hparams.log_images_every_n_steps
        log_images = every > 0 and self.global_step % every == 0
        loss, pred_ab = self._loss_and_ab(t, decode=log_images)
        self._check_finite(loss)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/nongray_fraction", t.nongray.float().mean())
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        if log_images and pred_ab is not None:
            self._log_grid("train/colorization", t, pred_ab)
        return loss

    def _check_finite(self, loss: Tensor) -> None:
        every = self.hparams.check_finite_every_n_steps
        if every <= 0 or self.global_step % every:
            return
        finite = bool(torch.isfinite(loss.detach()))
        if not self.trainer.strategy.reduce_boolean_decision(finite, all=True):
            from .checkpoint import resume_advice

            raise NonFiniteLossError(
                f"non-finite training loss ({float(loss.detach())}) at global step {self.global_step} "
                f"(epoch {self.current_epoch}); stopping; {resume_advice(self.trainer)}"
            )

    def _log_grid(self, key: str, t: ColorizationTargets, pred_ab: Tensor) -> None:
        if not self.trainer.is_global_zero:
            return
        from ..viz import colorization_grid
        from .loggers import log_image

        n = self.hparams.num_log_images
        grid = colorization_grid(t.lightness[:n], pred_ab[:n], t.ab[:n], max_images=n)
        log_image(self.trainer, key, grid.permute(1, 2, 0).cpu().numpy())

    def on_train_epoch_end(self) -> None:
        skipped = self._skipped.to(self.device)
        self.log("train/skipped_images", skipped.float(), reduce_fx="sum", sync_dist=True)
        if int(skipped):
            rank_zero_warn(f"{int(skipped)} unreadable image(s) were skipped in epoch {self.current_epoch}")
        self._skipped = torch.zeros((), dtype=torch.int64, device=self.device)

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        t = self.prepare(batch)
        if t is None:
            return
        loss, pred_ab = self._loss_and_ab(t, decode=True)
        assert pred_ab is not None
        n = t.ab.shape[0]
        self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=n, prog_bar=stage == "val")
        gray = torch.zeros_like(t.ab)
        assert self.val_rauc is not None and self.val_rauc_gray is not None
        self.val_auc.update(pred_ab, t.ab)
        self.val_auc_gray.update(gray, t.ab)
        self.val_rauc.update(pred_ab, t.ab)
        self.val_rauc_gray.update(gray, t.ab)
        small_l = t.lightness[..., :: self.targets.stride, :: self.targets.stride]
        rgb = lab_to_rgb(torch.cat((small_l, pred_ab.to(small_l.dtype)), 1), check=False)
        truth = lab_to_rgb(torch.cat((small_l, t.ab.to(small_l.dtype)), 1), check=False)
        self.val_colourfulness.update(rgb)
        self.val_colourfulness_truth.update(truth)
        metrics = {
            "auc": self.val_auc,
            "auc_gray": self.val_auc_gray,
            "rebalanced_auc": self.val_rauc,
            "rebalanced_auc_gray": self.val_rauc_gray,
            "colourfulness": self.val_colourfulness,
            "colourfulness_truth": self.val_colourfulness_truth,
        }
        for name, metric in metrics.items():
            self.log(f"{stage}/{name}", metric, batch_size=n)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    # ------------------------------------------------------------------ optimiser
    def _global_batch(self) -> int:
        trainer = self.trainer
        dm = getattr(trainer, "datamodule", None)
        batch = getattr(dm, "batch_size", None) or self.hparams.base_batch_size
        return int(batch) * trainer.world_size * trainer.accumulate_grad_batches

    def _adam_options(self) -> dict[str, Any]:
        """Adam's settings from the hyperparameters, with ``lr`` scaled to the global batch."""
        hp = self.hparams
        lr = scaled_lr(hp.lr, self._global_batch(), hp.base_batch_size, hp.lr_scaling)
        return {"lr": lr, "betas": tuple(hp.betas), "eps": hp.adam_eps, "weight_decay": hp.weight_decay}

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        options = self._adam_options()
        if options["lr"] != hp.lr:
            rank_zero_info(
                f"lr {hp.lr} scaled to {options['lr']} for a global batch of {self._global_batch()}"
            )
        optimizer = fused_adam(list(self.net.parameters()), **options)
        milestones, factors, warmup = list(hp.lr_milestones), list(hp.lr_factors), hp.warmup_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, milestones, factors, warmup)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_start(self) -> None:
        """Set Adam's settings from the hyperparameters again, after a resume restored the checkpoint's.

        Restoring an optimiser's state brings back its lr, betas, eps and weight decay, and the
        scheduler's base lr: without this, a resumed run would ignore a new ``--model.lr``. A no-op
        otherwise.
        """
        hp, options = self.hparams, self._adam_options()
        scheduler = self.trainer.lr_scheduler_configs[0].scheduler
        factor = lr_factor(scheduler.last_epoch, list(hp.lr_milestones), list(hp.lr_factors), hp.warmup_steps)
        scheduler.base_lrs = [options["lr"]] * len(scheduler.base_lrs)
        for group in self.trainer.optimizers[0].param_groups:
            group.update(options, initial_lr=options["lr"], lr=options["lr"] * factor)
