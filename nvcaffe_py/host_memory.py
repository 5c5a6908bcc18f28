"""How many bytes of memory this process may use: the machine's physical memory, or less where a
cgroup (a container's memory.max) or a resource limit (RLIMIT_AS, less what the process has
mapped already; RLIMIT_DATA) says so.

Blob shapes and whole nets are checked against it when they are set up, so that an impossible
size is refused at once, naming its layer, rather than failing at the first forward (or, for a
batch of 1e13, after a layer has spent minutes building per-item bookkeeping).
"""
import os
import resource

_CGROUP_LIMIT = "/sys/fs/cgroup/memory.max"


def _mapped_bytes() -> int:
    """The process's address space in use now (VmSize), 0 where /proc does not tell."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _cgroup_limit():
    try:
        with open(_CGROUP_LIMIT, encoding="ascii") as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def usable_bytes() -> int:
    """The most memory a new allocation of this process could get."""
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    cgroup = _cgroup_limit()
    if cgroup is not None:
        limits.append(cgroup)
    address_space = resource.getrlimit(resource.RLIMIT_AS)[0]
    if address_space != resource.RLIM_INFINITY:
        limits.append(max(address_space - _mapped_bytes(), 0))
    data = resource.getrlimit(resource.RLIMIT_DATA)[0]
    if data != resource.RLIM_INFINITY:
        limits.append(data)
    return min(limits)
