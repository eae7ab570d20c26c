"""Run the decoder stack of any transformers causal LM with Token Prepending, unmodified.

Design (no modeling code is copied):

* The backbone is ``model.get_decoder()`` (falling back to ``base_model``); its decoder layers
  are the one ``nn.ModuleList`` whose length is the config's number of hidden layers. That finds
  ``model.layers`` (Llama, Qwen2/3, Mistral, Gemma 2/3, Phi-3) and ``h`` (GPT-2) alike.
* The backbone is fed ``inputs_embeds``, so the ``<PST>`` input vector is written straight into
  the embedding sequence: the tokenizer's vocabulary and the embedding matrix are left untouched.
* TP is a forward pre-hook on each layer in ``[tp_start, tp_exit)``: it overwrites the hidden
  state at every row's ``<PST>`` position with that row's last-token hidden state, which is the
  previous layer's output. Masks and positions are unchanged.
* Early exit is a forward hook on the deepest requested layer that records the pooled output and
  raises ``_EarlyExit``: no later layer, final norm or LM head is ever computed. Asking for the
  last layer runs the backbone to its end and uses its normed output, which is what
  ``hidden_states[num_layers]`` means in transformers.

Indexing follows transformers' ``hidden_states``: output layer ``L`` is the output of decoder
layer ``L - 1`` (0-based); layer 0 would be the embeddings and is not an allowed output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UnsupportedModelError


class _EarlyExit(Exception):
    """Raised inside the forward pass once every requested layer has been recorded."""


@dataclass
class Batch:
    """A left-padded batch ready for the backbone.

    Attributes:
        input_ids: [B, T] token ids; the <PST> slot holds a placeholder id.
        attention_mask: [B, T] 1 for real tokens, 0 for left padding.
        pst_index: [B] position of <PST> in each row, or None without TP.
        text_mask: [B, T] 1 on the sentence's own tokens (for mean pooling).
        slots: every placeholder slot as (rows, positions, source positions): TP overwrites
            ``h[rows, positions]`` with ``h[rows, sources]``. With plain TP these are each
            row's <PST> and its last token; Hierarchical TP adds one slot per sentence block.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    pst_index: torch.Tensor | None
    text_mask: torch.Tensor
    slots: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None


def _num_layers(config) -> int:
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        n = getattr(cfg, name, None)
        if isinstance(n, int) and n > 0:
            return n
    raise UnsupportedModelError(
        f"cannot tell how many decoder layers {type(config).__name__} has "
        "(no num_hidden_layers / n_layer in its config)"
    )


def _hidden(x):
    # Decoder layers return a tensor in transformers v5 and a tuple in older versions.
    return x[0] if isinstance(x, tuple) else x


class Backbone:
    """Generic handle on a causal LM's decoder stack.

    Args:
        model: a transformers ``PreTrainedModel`` with a decoder (``AutoModelForCausalLM``).

    Raises:
        UnsupportedModelError: when the decoder layers cannot be found.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.num_layers = _num_layers(model.config)
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
        if decoder is None or decoder is model:
            decoder = getattr(model, "base_model", model)
        # Multimodal wrappers (e.g. Gemma 3 4B+) keep the text stack one level down.
        decoder = getattr(decoder, "language_model", decoder)
        self.decoder = decoder
        lists = [
            m
            for m in decoder.modules()
            if isinstance(m, nn.ModuleList) and len(m) == self.num_layers
        ]
        if not lists:
            raise UnsupportedModelError(
                f"{type(model).__name__}: found no list of {self.num_layers} decoder layers in "
                f"{type(decoder).__name__}; TP needs a decoder-only model whose layers are an "
                "nn.ModuleList (Llama, Qwen, Mistral, Gemma, Phi-3, GPT-2 families)"
            )
        self.layers: nn.ModuleList = lists[0]
        self.embed: nn.Module = model.get_input_embeddings()
        self.hidden_size = int(self.embed.weight.shape[1])

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed.weight.dtype

    @torch.inference_mode()
    def mean_input_embedding(self, chunk: int = 16384) -> torch.Tensor:
        """Mean of the embedding layer's *outputs* over every row of the embedding matrix.

        This is the deterministic <PST> input vector (like transformers' mean-resizing of a new
        token, without the noise): it is derived from the weights alone, summed in float64 so that
        it is the same on every machine, and passing ids through the embedding module keeps any
        scaling a model applies there (Gemma multiplies by sqrt(hidden_size)).
        """
        rows = int(self.embed.weight.shape[0])
        total = torch.zeros(self.hidden_size, dtype=torch.float64, device=self.device)
        for lo in range(0, rows, chunk):
            ids = torch.arange(lo, min(lo + chunk, rows), device=self.device)
            total += self.embed(ids).sum(0, dtype=torch.float64)
        return total / rows

    @torch.inference_mode()
    def run(
        self,
        batch: Batch,
        pst_vector: torch.Tensor | None,
        tp_range: tuple[int, int] | None,
        output_layers: Iterable[int],
        poolers: dict[str, Callable[[torch.Tensor, Batch], torch.Tensor]],
    ) -> dict[tuple[int, str], torch.Tensor]:
        """One forward pass; returns ``{(output_layer, pooler name): [B, H] float32}``.

        Args:
            batch: left-padded inputs.
            pst_vector: [H] input vector for the <PST> slot (required when ``batch.pst_index``).
            tp_range: ``(tp_start, tp_exit)``: TP before each layer in that half-open range, or
                None for vanilla.
            output_layers: transformers ``hidden_states`` indices to pool (1..num_layers).
            poolers: named functions mapping a [B, T, H] hidden state and the batch to [B, H];
                every one is applied to every output layer.
        """
        wanted = sorted(set(output_layers))
        if not wanted or wanted[0] < 1 or wanted[-1] > self.num_layers:
            raise ValueError(f"output layers must lie in 1..{self.num_layers}, got {wanted}")
        dev = self.device
        ids = batch.input_ids.to(dev)
        mask = batch.attention_mask.to(dev)
        embeds = self.embed(ids)
        slots = None
        if batch.slots is not None:
            if pst_vector is None:
                raise ValueError("a batch with <PST> slots needs a pst_vector")
            slots = tuple(t.to(dev) for t in batch.slots)
            rows, pos, _ = slots
            embeds = embeds.index_put(
                (rows, pos), pst_vector.to(embeds.dtype).expand(len(rows), -1)
            )
        # Positions count real tokens only, so left padding does not shift them (GPT-2's absolute
        # positions need this; for RoPE models it changes nothing).
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)

        out: dict[tuple[int, str], torch.Tensor] = {}

        def pool(layer: int, hidden: torch.Tensor) -> None:
            for name, fn in poolers.items():
                out[(layer, name)] = fn(hidden, batch).float()

        handles = []
        stop_at = wanted[-1] if wanted[-1] < self.num_layers else None

        def record(layer: int):
            def hook(_module, _args, output):
                pool(layer, _hidden(output))
                if layer == stop_at:
                    raise _EarlyExit

            return hook

        try:
            if tp_range is not None and slots is not None:
                start, stop = tp_range
                rows, pos, src = slots

                def prepend(_module, args, kwargs):
                    # Sources are text or prompt tokens, never slots, so one write does all.
                    if args:
                        h = args[0]
                        h = h.index_put((rows, pos), h[rows, src])
                        return (h, *args[1:]), kwargs
                    h = kwargs["hidden_states"]
                    kwargs["hidden_states"] = h.index_put((rows, pos), h[rows, src])
                    return args, kwargs

                for i in range(start, stop):
                    handles.append(
                        self.layers[i].register_forward_pre_hook(prepend, with_kwargs=True)
                    )
            for layer in wanted:
                if layer < self.num_layers:
                    handles.append(self.layers[layer - 1].register_forward_hook(record(layer)))
            try:
                result = self.decoder(
                    inputs_embeds=embeds,
                    attention_mask=mask,
                    position_ids=position_ids,
                    use_cache=False,
                )
                if self.num_layers in wanted:
                    pool(self.num_layers, result.last_hidden_state)
            except _EarlyExit:
                pass
        finally:
            for h in handles:
                h.remove()
        return out


def pool_last(hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Last-token pooling (the paper's); rows are left-padded so the last column is real."""
    return hidden[:, -1]


def pool_mean(hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean over the sentence's own tokens (prompt and <PST> excluded)."""
    m = batch.text_mask.to(hidden.device, hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


POOLERS: dict[str, Callable[[torch.Tensor, Batch], torch.Tensor]] = {
    "last": pool_last,
    "mean": pool_mean,
}
