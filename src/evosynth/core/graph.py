"""A network as the synthesis sees it: its synapse-carrying layers and its clusters, on any traced PyTorch graph.

A *cluster* is one prunable channel of a group of coupled layers: a convolution's output channel together with its
BatchNorm, every consumer's input channel, and every layer tied to it through a residual addition or a
concatenation. Torch-Pruning's ``DependencyGraph``, traced on example inputs, finds the groups (``ChannelGraph``);
the same dependency graph cuts the removed channels out (``cut``) and records the cut as a pruning history (JSON)
that ``replay`` applies to a freshly built network. Outputs the task needs (a detector's head, a classifier's
classes) are never removed: the caller names their modules (``keep_outputs_of``).

Convolutions follow their groups: a depthwise convolution's output channel is its input channel (one cluster); a
grouped convolution's groups must keep the same channels, so the channels it holds at the same place in each of
its groups are *tied* (``Group.ties``) and are one cluster, kept or removed together.

The layers' multiply-accumulates are counted on the traced graph at the example inputs' size, one generic count
for any network (``GraphCost``): what the cost environment prices.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from evosynth.errors import EvosynthError

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)  # the layers whose weights are synapses


class GraphError(EvosynthError, ValueError):
    """A network, or an argument about it, that the synthesis cannot work on; the message names the module."""


def _torch_pruning() -> Any:
    import torch_pruning

    return torch_pruning


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode while tracing, so that a forward pass never moves BatchNorm's running statistics."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.train(training)


def _depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1 and \
        module.groups == module.in_channels == module.out_channels


def _convolution_groups(module: nn.Module) -> int:
    """A grouped convolution's groups (1 for any other layer; a depthwise convolution is coupled instead)."""
    if isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1 and not _depthwise(module):
        return int(module.groups)
    return 1


@dataclass(frozen=True)
class ChannelMap:
    """Which channels of one dimension of a layer (its outputs or its inputs) belong to which group: ``positions``
    of the layer and, for each, the group's channel (``channels``)."""

    group: int
    positions: torch.Tensor  # long
    channels: torch.Tensor  # long, same length


@dataclass
class Layer:
    """A synapse-carrying layer (Conv or Linear): its weight, where its channels belong, and what it costs."""

    name: str
    module: nn.Module
    outputs: list[ChannelMap] = field(default_factory=list)
    inputs: list[ChannelMap] = field(default_factory=list)
    factor: float = 0.0  # multiply-accumulates per (input channel per group x output channel) at the example size
    depthwise: bool = False
    groups: int = 1  # a grouped convolution's groups: its weight holds the inputs of one group (their positions)

    @property
    def weight(self) -> torch.Tensor:
        weight = self.module.weight
        assert isinstance(weight, torch.Tensor)
        return weight

    @property
    def parameter(self) -> str:
        return f"{self.name}.weight"

    @property
    def in_channels(self) -> int:
        """The layer's input channels, those of all its convolution groups."""
        return self.weight.shape[1] * self.groups

    def keep(self, decisions: Sequence[torch.Tensor], inputs: bool) -> torch.Tensor:
        """A bool per output channel (or per input of the weight) of the layer: False where its group's cluster is
        removed. A grouped convolution's groups lose the same inputs (its channels are tied: ``Group.ties``)."""
        size = self.in_channels if inputs else self.weight.shape[0]
        return self.spread(decisions, inputs, torch.ones(size, dtype=torch.bool))

    def spread(self, values: Sequence[torch.Tensor], inputs: bool, fill: torch.Tensor) -> torch.Tensor:
        """Per output channel (or input of the weight) of the layer, its group's entry of ``values`` (one tensor
        per group, indexed by the group's channels); ``fill`` (one entry per channel, of all the groups of a
        grouped convolution) where a channel belongs to no group."""
        spread = fill.clone()
        for channel_map in self.inputs if inputs else self.outputs:
            spread[channel_map.positions] = values[channel_map.group][channel_map.channels].to(spread.dtype)
        if inputs and self.groups > 1:
            per_group = spread.reshape(self.groups, -1)
            if not (per_group == per_group[0]).all():
                raise GraphError(f"{self.name}: the convolution groups read different values of their inputs")
            return per_group[0].clone()
        return spread

    def on_kept_inputs(self, synapses: torch.Tensor, decisions: Sequence[torch.Tensor]) -> torch.Tensor:
        """``synapses`` (a bool per weight) where their input channel is kept (a depthwise layer's input is its
        own channel, decided with its output)."""
        if self.depthwise or not self.inputs:
            return synapses
        return synapses & self.keep(decisions, inputs=True).reshape((1, -1) + (1,) * (self.weight.dim() - 2))

    @property
    def per_cluster(self) -> tuple[int, ...]:
        """The shape that spreads one value per output channel over the layer's weight."""
        return (-1,) + (1,) * (self.weight.dim() - 1)


@dataclass
class Group:
    """One set of coupled channels: its producing layers (whose output channels are its clusters) and consumers."""

    index: int
    channels: int
    producers: list[str]
    consumers: list[str]
    root: nn.Module  # the module whose output channels index the group (Torch-Pruning's root)
    # Channels that are kept or removed together (a grouped convolution's groups must keep the same number of
    # channels, at the same places): per channel, its tie's index; None where every channel is its own.
    ties: torch.Tensor | None = None

    def tie_index(self) -> torch.Tensor:
        """Per channel, its tie's index (each channel its own where there are no ties)."""
        return torch.arange(self.channels) if self.ties is None else self.ties


class GraphCost:
    """The multiply-accumulates of the traced network as a function of its groups' widths.

    Layer l costs ``factor[l] * in[l] * out[l]``, where in[l] and out[l] are its input (per convolution group) and
    output channels: fixed counts, or the widths of the groups they belong to (a depthwise layer's input per group
    is 1). A layer that holds only part of a group's channels (one branch of a concatenation coupled as a whole) is
    priced at its part's share of the group's width; a layer whose input positions repeat a channel (a linear layer
    after a flatten) at that many times the width. ``shares`` is, per group, the fraction of the cost its channels
    carry as producer and as consumer.
    """

    def __init__(self, layers: Sequence[Layer], groups: Sequence[Group]) -> None:
        self._terms = []
        for layer in layers:
            weight = layer.weight
            fixed_in = 0.0 if layer.depthwise else float(weight.shape[1])
            fixed_out = weight.shape[0]
            in_terms: dict[int, int] = {}
            out_terms: dict[int, int] = {}
            if not layer.depthwise:
                for channel_map in layer.inputs:
                    fixed_in -= len(channel_map.positions) / layer.groups
                    in_terms[channel_map.group] = in_terms.get(channel_map.group, 0) + len(channel_map.positions)
            for channel_map in layer.outputs:
                fixed_out -= len(channel_map.positions)
                out_terms[channel_map.group] = out_terms.get(channel_map.group, 0) + len(channel_map.positions)
            channels = [group.channels for group in groups]
            self._terms.append((
                layer.factor, 1 if layer.depthwise else fixed_in,
                [(g, count / channels[g] / layer.groups) for g, count in in_terms.items()],
                fixed_out, [(g, count / channels[g]) for g, count in out_terms.items()]))

    @staticmethod
    def _width(fixed: float, terms: list[tuple[int, float]], widths: Sequence[float]) -> float:
        return fixed + sum(multiple * widths[group] for group, multiple in terms)

    def cost(self, widths: Sequence[float]) -> float:
        """MACs of the network with these group widths (expected, fractional widths allowed)."""
        return sum(factor * self._width(fixed_in, ins, widths) * self._width(fixed_out, outs, widths)
                   for factor, fixed_in, ins, fixed_out, outs in self._terms)

    def shares(self, widths: Sequence[float]) -> list[float]:
        """Per group, the fraction of the cost its channels carry: the layers they are outputs of, and the layers
        they are inputs of (each layer counted once for its outputs and once for its inputs)."""
        per_channel: list[float] = [0.0] * len(widths)
        for factor, fixed_in, ins, fixed_out, outs in self._terms:
            width_in, width_out = self._width(fixed_in, ins, widths), self._width(fixed_out, outs, widths)
            for group, multiple in outs:
                per_channel[group] += factor * width_in * multiple
            for group, multiple in ins:
                per_channel[group] += factor * multiple * width_out
        carried = [widths[group] * per_channel[group] for group in range(len(widths))]
        total = sum(carried)
        return [value / total for value in carried]


def _call_order(model: nn.Module, example_inputs: Any) -> tuple[list[str], dict[str, float]]:
    """The synapse-carrying modules in the order the forward pass calls them (data-flow order), and each one's
    multiply-accumulates per (input channel per group x output channel) at the example inputs' size."""
    names = {module: name for name, module in model.named_modules()}
    order: list[str] = []
    factors: dict[str, float] = {}

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        name = names[module]
        if name in factors:
            raise GraphError(f"{name} is called more than once in a forward pass; a shared layer cannot be pruned "
                             "as one")
        order.append(name)
        if isinstance(module, nn.Linear):
            factors[name] = float(output[0].numel() // output.shape[-1]) if output.dim() > 1 else 1.0
        else:
            kernel = 1
            for size in module.kernel_size:  # type: ignore[union-attr]
                kernel *= size
            factors[name] = float(output[0, 0].numel() * kernel)

    run_hooked(model, example_inputs,
               [module.register_forward_hook(hook) for module in model.modules() if isinstance(module, PRUNABLE_TYPES)])
    return order, factors


def run_hooked(model: nn.Module, example_inputs: Any, handles: Sequence[Any]) -> None:
    """One forward pass without gradients, with the hooks of ``handles`` registered: they are removed after it."""
    try:
        with torch.no_grad():
            run_forward(model, example_inputs)
    finally:
        for handle in handles:
            handle.remove()


def run_forward(model: nn.Module, example_inputs: Any) -> Any:
    if isinstance(example_inputs, dict):
        return model(**example_inputs)
    if isinstance(example_inputs, list | tuple):
        return model(*example_inputs)
    return model(example_inputs)


class ChannelGraph:
    """The groups of coupled channels and the synapse-carrying layers of one network, traced on example inputs.

    The graph holds the network it traced (``model``) and cuts it in place (``cut``): trace a copy of a network
    that must stay as it is (``ChannelGraph.of``).
    """

    def __init__(self, model: nn.Module, example_inputs: Any, keep_outputs_of: Sequence[str] = ()) -> None:
        self.model = model
        self.example_inputs = example_inputs
        modules = dict(model.named_modules())
        unknown = [name for name in keep_outputs_of if name not in modules]
        if unknown:
            raise GraphError(f"keep_outputs_of names no module of the network: {', '.join(unknown)} (its modules "
                             f"include {', '.join(list(modules)[1:6])} ...)")
        with _evaluating(model):
            try:
                order, factors = _call_order(model, example_inputs)
            except GraphError:
                raise
            except Exception as error:  # the network's own forward pass failed on these inputs
                raise GraphError(f"the network does not run on the example inputs: {type(error).__name__}: "
                                 f"{error}") from error
            tp = _torch_pruning()
            try:
                with torch.enable_grad():  # the dependency graph is traced through autograd, whatever the caller's mode
                    self.dependencies = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs,
                                                                              verbose=False)
            except Exception as error:
                raise GraphError(f"the network's graph cannot be traced: {type(error).__name__}: {error}") from error
        self.layers = [Layer(name, modules[name], factor=factors[name], depthwise=_depthwise(modules[name]),
                             groups=_convolution_groups(modules[name])) for name in order]
        by_module = {layer.module: layer for layer in self.layers}
        position = {layer.name: index for index, layer in enumerate(self.layers)}
        kept = [modules[name] for name in keep_outputs_of]
        found = []
        for tp_group in self.dependencies.get_all_groups(ignored_layers=kept, root_module_types=PRUNABLE_TYPES):
            producers: list[str] = []
            consumers: list[str] = []
            maps = []
            for item in tp_group.items:
                layer = by_module.get(item.dep.target.module)
                if layer is None:
                    continue
                is_output = self.dependencies.is_out_channel_pruning_fn(item.dep.handler)
                positions = torch.tensor([int(i) for i in item.idxs], dtype=torch.long)
                channels = torch.tensor([int(i) for i in item.root_idxs], dtype=torch.long)
                maps.append((layer, is_output, positions, channels))
                (producers if is_output else consumers).append(layer.name)
            if not producers:
                continue
            root = tp_group.items[0].dep.target.module
            found.append((min(position[name] for name in producers), producers, consumers, maps, root,
                          self.dependencies.get_out_channels(root)))
        self.groups: list[Group] = []
        for index, (_, producers, consumers, maps, root, channels) in enumerate(sorted(found, key=lambda f: f[0])):
            self.groups.append(Group(index, channels, sorted(set(producers), key=position.__getitem__),
                                     sorted(set(consumers), key=position.__getitem__), root))
            for layer, is_output, positions, group_channels in maps:
                (layer.outputs if is_output else layer.inputs).append(ChannelMap(index, positions, group_channels))
        self._tie_grouped_convolutions()
        self.cost = GraphCost(self.layers, self.groups)

    def _tie_grouped_convolutions(self) -> None:
        """Tie the channels that a grouped convolution's groups hold at the same place (its input channels, and
        its output channels, group by group): Torch-Pruning cuts a grouped convolution only where every group loses
        the same channels. Ties may join channels of one group only."""
        parent: dict[tuple[int, int], tuple[int, int]] = {}

        def root(item: tuple[int, int]) -> tuple[int, int]:
            while parent.get(item, item) != item:
                item = parent[item]
            return item

        for layer in self.layers:
            if layer.groups == 1:
                continue
            for maps, size in ((layer.inputs, layer.in_channels), (layer.outputs, layer.weight.shape[0])):
                owner: dict[int, tuple[int, int]] = {}
                for channel_map in maps:
                    for position, channel in zip(channel_map.positions.tolist(), channel_map.channels.tolist(),
                                                 strict=True):
                        owner[position] = (channel_map.group, channel)
                if not owner:
                    continue
                if len(owner) != size:
                    raise GraphError(f"{layer.name}: a grouped convolution whose channels are only partly prunable "
                                     "is not supported")
                for position in range(size):
                    first = owner[position % (size // layer.groups)]
                    if owner[position][0] != first[0]:
                        raise GraphError(f"{layer.name}: a grouped convolution that ties channels of different "
                                         "groups of coupled layers (through a concatenation) is not supported")
                    a, b = root(owner[position]), root(first)
                    if a != b:
                        parent[a] = b
        for group in self.groups:
            if any(key[0] == group.index for key in parent):
                roots = [root((group.index, channel)) for channel in range(group.channels)]
                index = {key: number for number, key in enumerate(dict.fromkeys(roots))}
                group.ties = torch.tensor([index[key] for key in roots], dtype=torch.long)

    @classmethod
    def of(cls, model: nn.Module, example_inputs: Any, keep_outputs_of: Sequence[str] = ()) -> ChannelGraph:
        """The graph of a copy of ``model`` (which is left untouched): deciding and cutting work on the copy."""
        return cls(copy.deepcopy(model), example_inputs, keep_outputs_of)

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)

    def producer_of(self, layer: Layer) -> list[int]:
        """The groups whose clusters are this layer's output channels."""
        return sorted({channel_map.group for channel_map in layer.outputs})

    def cut(self, decisions: Sequence[torch.Tensor], masks: dict[str, torch.Tensor]
            ) -> tuple[nn.Module, dict[str, torch.Tensor], list[Any], dict[str, list[int]]]:
        """Cut every removed cluster out of the traced network (in place) with the dependency graph, and the
        synapse masks (parameter name -> bool, in the parent's shapes) to the cut shapes.

        Returns the cut network in eval mode, its masks, the pruning history from the parent (JSON) and the
        decision (each group's root module -> its removed channels, sorted).
        """
        cut_masks = {}
        for layer in self.layers:
            mask = masks[layer.parameter]
            mask = mask[layer.keep(decisions, inputs=False)]
            if not layer.depthwise:
                mask = mask[:, layer.keep(decisions, inputs=True)]
            cut_masks[layer.parameter] = mask.clone()
        names = {module: name for name, module in self.model.named_modules()}
        removed: dict[str, list[int]] = {}
        for group, keep in zip(self.groups, decisions, strict=True):
            indices = [int(i) for i in torch.nonzero(~keep).flatten()]
            if not indices:
                continue
            if len(indices) == group.channels:
                raise GraphError(f"the decision removes every channel of the group of {names[group.root]}")
            removed[names[group.root]] = indices
            pruner = self.dependencies.get_pruner_of_module(group.root)
            self.dependencies.get_pruning_group(group.root, pruner.prune_out_channels, indices).prune()
        with torch.no_grad():
            for layer in self.layers:
                if tuple(layer.weight.shape) != tuple(cut_masks[layer.parameter].shape):
                    raise GraphError(f"{layer.name}: the cut weight is {tuple(layer.weight.shape)}, its mask "
                                     f"{tuple(cut_masks[layer.parameter].shape)}")
                layer.weight.mul_(cut_masks[layer.parameter])
        return self.model.eval(), cut_masks, copy.deepcopy(self.dependencies.pruning_history()), removed


def replay(model: nn.Module, example_inputs: Any, history: Sequence[Any]) -> nn.Module:
    """``model`` (freshly built, the ancestor) cut as ``history`` says, in place: the network a pruning history
    leads to, without its weights (load them after)."""
    if not history:
        return model
    tp = _torch_pruning()
    with _evaluating(model), torch.enable_grad():
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs, verbose=False)
    try:
        graph.load_pruning_history([list(entry) for entry in history])
    except (AttributeError, IndexError, TypeError, ValueError) as error:
        raise GraphError(f"the pruning history does not apply to this network: {type(error).__name__}: "
                         f"{error}") from error
    return model


def count_macs(model: nn.Module, example_inputs: Any) -> int:
    """Multiply-accumulates of one forward pass on ``example_inputs``, counted on the layers the pass calls."""
    with _evaluating(model):
        order, factors = _call_order(model, example_inputs)
    modules = dict(model.named_modules())
    total = 0.0
    for name in order:
        weight = modules[name].weight
        total += factors[name] * weight.shape[0] * (1 if _depthwise(modules[name]) else weight.shape[1])
    return round(total)
