"""The DreamBooth training loop: set up the trained modules and their optimizer, resume from a checkpoint,
step (with gradient accumulation, under DDP when launched as several processes), checkpoint, draw validation
grids, and save the trained model. Every process draws its own shard of each step's batch from per-step
seeds; only the main process writes files or shows progress.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from boothline.io.files import atomic_write_text, remove_stale
from boothline.params import Params, Train
from boothline.paths import Workspace
from boothline.photos.manifest import ImageSet
from boothline.pipelines import compiling
from boothline.pipelines.loading import load_pipeline
from boothline.training.batches import (Augment, Batch, DreamBoothBatches, LatentSource, TextInputs, encode_text,
                                        tokenize)
from boothline.training.checkpoints import (Checkpoint, TrainingState, check_free_disk, fingerprint,
                                            fingerprint_inputs, list_checkpoints, load_training_state, resume_point,
                                            save_checkpoint, test_kill_point)
from boothline.training.loss_log import LossReadback, MetricsLog
from boothline.training.master_weights import MasterWeights, ModuleWeights, optimized_weights
from boothline.training.objective import LossTerms, Objective, loss_terms, step_generator
from boothline.training.saving import LORA_WEIGHTS, save_trained_model
from boothline.training.trainable import (TEXT_ENCODER, UNET, count_parameters, enable_gradient_checkpointing,
                                          make_lr_scheduler, make_optimizer, set_trainable, trainable_named_parameters)
from boothline.training.validation_grids import save_validation_grid

ADAM_MOMENTS = 2  # AdamW keeps two fp32 moments per weight: a checkpoint is about 3x the trainable weights
log = logging.getLogger(__name__)


def train_dreambooth(params: Params, workspace: Workspace, instance: ImageSet, prior: ImageSet | None,
                     device: torch.device) -> dict:
    """Train (or resume) to `train.max_train_steps`; returns the run's summary (empty on other processes)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    train = params.train
    accelerator = Accelerator(mixed_precision=train.mixed_precision, cpu=device.type == "cpu")
    try:
        inputs = fingerprint_inputs(params, instance.sha256, prior.sha256 if prior else None,
                                    accelerator.num_processes)
        if accelerator.is_main_process:
            remove_stale(workspace.checkpoints)
        accelerator.wait_for_everyone()
        resume = resume_point(inputs, train.max_train_steps, workspace.checkpoints)
        cuda = [accelerator.device.index or 0] if accelerator.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # dropout reseeds the global RNG every step; restore it after
            return train_model(params, workspace, accelerator, instance, prior, inputs, resume)
    finally:
        accelerator.end_training()
        if accelerator.num_processes == 1:  # let a later in-process run choose other accelerate settings
            AcceleratorState._reset_state(reset_partial_state=True)


@dataclass
class Run:
    """Everything the training loop works with."""

    params: Params
    accelerator: object
    pipe: object
    models: dict[str, torch.nn.Module]  # trainable modules, unwrapped
    wrapped: dict[str, torch.nn.Module]  # the same, as accelerate prepared (DDP under launch) and compiled them
    weights: ModuleWeights | MasterWeights  # what the optimizer updates: the modules' own, or fp32 masters
    optimizer: object
    lr_scheduler: object
    objective: Objective
    batches: DreamBoothBatches
    prompts: TextInputs  # instance prompt, class prompt; on the training device
    text_embeddings: torch.Tensor | None  # precomputed when the text encoder is frozen
    record: dict  # fingerprint and what the checkpoints need to know about the model
    workspace: Workspace


def setup(params: Params, workspace: Workspace, accelerator, instance: ImageSet, prior: ImageSet | None,
          inputs: dict) -> Run:
    train = params.train
    device = accelerator.device
    pipe = load_pipeline(params.model.base, model=params.model, device=device, dtype=torch.float32)
    models = set_trainable(pipe, train)
    if train.gradient_checkpointing:
        enable_gradient_checkpointing(models)
    if train.channels_last if train.channels_last is not None else device.type == "cuda":
        pipe.unet.to(memory_format=torch.channels_last)  # cuDNN's fast convolutions are NHWC
    weights = sum(p.numel() * p.element_size() for _, p in trainable_named_parameters(models))
    check_free_disk(workspace.checkpoints, weights * (1 + ADAM_MOMENTS), "one checkpoint")

    augment = Augment(train.resolution, train.center_crop, train.random_flip)
    instance_latents = LatentSource(pipe.vae, instance.images, augment, train.cache_latents)
    prior_latents = LatentSource(pipe.vae, prior.images, augment, train.cache_latents) if prior else None
    objective = Objective.from_scheduler_config(pipe.scheduler.config, prior_loss_weight=train.prior_loss_weight,
                                                snr_gamma=train.snr_gamma, device=device)
    batches = DreamBoothBatches(instance_latents, prior_latents, batch_size=train.batch_size, seed=train.seed,
                                offset_noise=train.offset_noise, num_train_timesteps=objective.num_train_timesteps,
                                rank=accelerator.process_index, world_size=accelerator.num_processes)
    prompts = tokenize(pipe.tokenizer, [params.instance_prompt, params.class_prompt]).to(device)
    text_embeddings = None
    if TEXT_ENCODER not in models:
        with torch.no_grad():
            text_embeddings = encode_text(pipe.text_encoder, prompts, use_attention_mask(pipe)).float()

    for name in idle_frozen_modules(train, models, [instance_latents, prior_latents]):
        getattr(pipe, name).to("cpu")

    optimized = optimized_weights(models, train.compute_copies)
    optimizer = make_optimizer(optimized.groups(), train)
    lr_scheduler = make_lr_scheduler(optimizer, train)
    prepared = accelerator.prepare(*models.values(), optimizer)
    wrapped = dict(zip(models, prepared[:-1]))
    if train.compile:
        compiling.load_cache("train")
        wrapped = {name: compiling.compiled(module, train.compile_mode) for name, module in wrapped.items()}
    record = {"fingerprint": fingerprint(inputs), "fingerprint_inputs": inputs, "base_id": inputs["model.base"],
              "kind": "lora" if train.lora.enabled else "full",
              "lora": train.lora.model_dump(mode="json") if train.lora.enabled else None,
              "train_text_encoder": train.train_text_encoder}
    return Run(params, accelerator, pipe, models, wrapped, optimized, prepared[-1], lr_scheduler, objective, batches,
               prompts, text_embeddings, record, workspace)


def idle_frozen_modules(train: Train, models: dict, sources: list[LatentSource | None]) -> list[str]:
    """Frozen modules the training loop never calls once latents and text embeddings are cached: they wait
    on the CPU (0.8 GiB of GPU memory at SD 1.5 size). Validation grids render with all of them."""
    if train.validate_every:
        return []
    idle = ["vae"] if all(source is None or source.cached for source in sources) else []
    return idle + ([] if TEXT_ENCODER in models else [TEXT_ENCODER])


def use_attention_mask(pipe) -> bool:
    return bool(getattr(pipe.text_encoder.config, "use_attention_mask", False))


def restore(run_: Run, checkpoint: Checkpoint) -> MetricsLog:
    state = load_training_state(checkpoint, run_.accelerator.device)
    run_.weights.load_state(state.trainable, str(checkpoint.path))
    run_.optimizer.load_state_dict(state.optimizer)
    run_.lr_scheduler.load_state_dict(state.lr_scheduler)
    if state.grad_scaler is not None and run_.accelerator.scaler is not None:
        run_.accelerator.scaler.load_state_dict(state.grad_scaler)
    log.info("resuming from %s", checkpoint.path)
    return MetricsLog.from_csv(state.metrics_csv)


def forward_backward(run_: Run, batch: Batch, accumulation: int) -> LossTerms:
    batch = batch.to(run_.accelerator.device)
    if run_.text_embeddings is not None:
        states = run_.text_embeddings[batch.prompt_index]
    else:
        states = encode_text(run_.wrapped[TEXT_ENCODER], run_.prompts.rows(batch.prompt_index),
                             use_attention_mask(run_.pipe))
    terms = loss_terms(run_.wrapped[UNET], batch.latents, states, batch.noise, batch.timesteps, batch.num_instance,
                       run_.objective)
    run_.accelerator.backward(terms.loss / accumulation)
    return terms


def optimizer_step(run_: Run, step: int) -> torch.Tensor:
    """One optimizer update (all its accumulation micro-steps); returns (loss, instance, prior) averaged
    over micro-steps and processes."""
    train, accelerator = run_.params.train, run_.accelerator
    accumulation = train.gradient_accumulation_steps
    totals = torch.zeros(3, device=accelerator.device)
    for micro in range(accumulation):
        micro_step = step * accumulation + micro
        # Only modules that draw from the global RNG (LoRA dropout) see this seed; data and noise use `batches`.
        torch.manual_seed(step_generator(train.seed, micro_step, accelerator.process_index, "global").initial_seed())
        batch = run_.batches(micro_step)
        compiling.mark_step_begin()
        last = micro == accumulation - 1
        with contextlib.ExitStack() as stack:
            if not last:  # gradients are all-reduced once, on the last micro-step
                for module in run_.wrapped.values():
                    stack.enter_context(accelerator.no_sync(module))
            terms = forward_backward(run_, batch, accumulation)
        totals += torch.stack([terms.loss, terms.instance_loss, terms.prior_loss]).detach() / accumulation
        run_.weights.after_backward(last, accelerator.num_processes)
    accelerator.clip_grad_norm_(run_.weights.updated, train.max_grad_norm)
    run_.optimizer.step()
    if not accelerator.optimizer_step_was_skipped:  # fp16's scaler skips overflowing steps; so does the schedule
        run_.lr_scheduler.step()
    run_.optimizer.zero_grad(set_to_none=True)
    run_.weights.after_step()
    return accelerator.reduce(totals, reduction="mean")


def save_state(run_: Run, step: int, metrics: MetricsLog) -> None:
    scaler = run_.accelerator.scaler
    state = TrainingState(step, run_.weights.state(), run_.optimizer.state_dict(),
                          run_.lr_scheduler.state_dict(), scaler.state_dict() if scaler is not None else None,
                          metrics.csv())
    save_checkpoint(state, run_.record, run_.params.train.keep_checkpoints, run_.workspace.checkpoints)
    atomic_write_text(run_.workspace.train_metrics, metrics.csv())  # the DVC plot follows a running training


def train_model(params: Params, workspace: Workspace, accelerator, instance: ImageSet, prior: ImageSet | None,
                inputs: dict, resume: Checkpoint | None) -> dict:
    started = time.perf_counter()
    train = params.train
    main = accelerator.is_main_process
    run_ = setup(params, workspace, accelerator, instance, prior, inputs)
    metrics = restore(run_, resume) if resume else MetricsLog()
    first = resume.step if resume else 0
    if main:
        log.info("training %s: %d trainable weights, steps %d-%d, %d instance + %d class images, %d process(es)",
                 run_.record["kind"], count_parameters(run_.models), first + 1, train.max_train_steps,
                 len(instance.images), len(prior.images) if prior else 0, accelerator.num_processes)

    progress = tqdm(total=train.max_train_steps, initial=first, desc="train", unit="step", disable=not main,
                    mininterval=1.0)
    loop_started = time.perf_counter()
    readback = LossReadback(metrics, train.log_every)
    for step in range(first, train.max_train_steps):
        lr = run_.lr_scheduler.get_last_lr()[0]
        done = step + 1
        readback.add(done, lr, optimizer_step(run_, step))
        progress.update(1)
        checkpoint = done % train.checkpoint_every == 0
        validation = bool(train.validate_every) and done % train.validate_every == 0
        if checkpoint or validation:
            readback.read()  # a checkpoint carries every row so far
        if metrics.rows and metrics.rows[-1]["step"] == done:  # just read back
            row = metrics.rows[-1]
            progress.set_postfix(loss=f"{row['loss']:.4f}", steps_per_s=f"{row['steps_per_s']:.2f}")
            if main:  # what a watcher (the service's job page) reads between checkpoints
                atomic_write_text(workspace.train_dir / "progress.json", json.dumps(
                    {"stage": "train", "step": done, "total": train.max_train_steps, "loss": row["loss"],
                     "steps_per_s": row["steps_per_s"]}) + "\n")
        if main and checkpoint:
            save_state(run_, done, metrics)
        if main and validation:
            with accelerator.autocast():
                save_validation_grid(run_.pipe, params, done, workspace.validation_dir)
        test_kill_point("after-step", done)
    readback.read()
    progress.close()
    loop_seconds = time.perf_counter() - loop_started
    accelerator.wait_for_everyone()
    run_.weights.finish()
    if train.compile and main:
        compiling.save_cache("train")

    summary: dict = {}
    if main:
        card = save_trained_model(run_.pipe, run_.models, params, train.max_train_steps, run_.record["fingerprint"],
                                  workspace.model_dir)
        steps_run = train.max_train_steps - first
        summary = {
            "kind": card["kind"], "steps": train.max_train_steps, "resumed_from_step": first if resume else None,
            "steps_this_run": steps_run, "wall_time_s": round(time.perf_counter() - started, 3),
            "train_loop_s": round(loop_seconds, 3),
            "steps_per_s": round(steps_run / loop_seconds, 4) if steps_run and loop_seconds > 0 else None,
            "trainable_params": count_parameters(run_.models), "fingerprint": run_.record["fingerprint"],
            "num_processes": accelerator.num_processes, "device": str(accelerator.device),
            "mixed_precision": train.mixed_precision, "prior_preservation": prior is not None,
            "instance_images": len(instance.images), "class_images": len(prior.images) if prior else 0,
            "checkpoints": [c.path.name for c in list_checkpoints(workspace.checkpoints)],
            **metrics.summary(),
        }
        if card["kind"] == "lora":
            summary["lora_bytes"] = (workspace.model_dir / LORA_WEIGHTS).stat().st_size
        atomic_write_text(workspace.train_metrics, metrics.csv())
        log.info("trained %d steps (%s steps/s), model in %s", steps_run, summary["steps_per_s"], workspace.model_dir)
    accelerator.wait_for_everyone()
    return summary
