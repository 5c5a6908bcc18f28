"""NetState filtering: which layers a net keeps for a phase, level and stages (Caffe's
Net::FilterNet and StateMeetsRule)."""
from .errors import CaffeError
from .proto import caffe_pb2


def state_meets_rule(state, rule) -> bool:
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    if any(s in stages for s in rule.not_stage):
        return False
    return True


def layer_included(state, layer_param) -> bool:
    if layer_param.include and layer_param.exclude:
        raise CaffeError(f"layer '{layer_param.name}' specifies both include and exclude rules; use one")
    if layer_param.include:
        return any(state_meets_rule(state, r) for r in layer_param.include)
    return not any(state_meets_rule(state, r) for r in layer_param.exclude)


def filter_net(net_param, state):
    """A copy of `net_param` holding only the layers included for `state`."""
    filtered = caffe_pb2.NetParameter()
    filtered.CopyFrom(net_param)
    del filtered.layer[:]
    for layer_param in net_param.layer:
        if layer_included(state, layer_param):
            filtered.layer.add().CopyFrom(layer_param)
    return filtered


def make_state(net_param, phase=None, level=None, stages=None):
    """The effective NetState: the net's own `state`, overridden by the caller's arguments."""
    state = caffe_pb2.NetState()
    state.CopyFrom(net_param.state)
    if phase is not None:
        state.phase = phase
    if level is not None:
        state.level = level
    if stages is not None:
        del state.stage[:]
        state.stage.extend(stages)
    return state
