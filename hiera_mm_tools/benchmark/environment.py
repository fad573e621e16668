"""What is installed here, the machine the numbers come from, and this process's peak memory."""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import platform
import resource
import sys

#: distributions whose versions go with the machine's facts; plug-ins add their framework's
REPORTED_DISTS = ['transformers', 'timm', 'onnxruntime']


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def import_error(module: str) -> str | None:
    """None when ``module`` imports here, else why not (missing, or broken: e.g. mmcv built
    without its ops), in one line."""
    if not has_module(module.split('.')[0]):
        return 'not installed'
    try:
        importlib.import_module(module)
    except Exception as e:  # ImportError, or a library that fails while it loads
        return f'{type(e).__name__}: {e}'.splitlines()[0][:200]
    return None


@functools.lru_cache(maxsize=None)
def _distributions() -> dict:
    from importlib import metadata
    return metadata.packages_distributions()  # reads every installed distribution's file list


def module_version(module: str) -> str | None:
    """The installed version of the distribution that provides ``module`` (``sam2`` -> SAM-2's),
    from the package metadata, without importing it; 'installed' where no metadata names it; None
    where the module is not there."""
    if not has_module(module):
        return None
    from importlib import metadata
    for dist in _distributions().get(module, [module]):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return 'installed'


def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_status() -> dict:
    """This process's peak/current RSS in MiB (VmHWM/VmRSS where /proc exists) and ru_maxrss."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    out = {'ru_maxrss_mib': maxrss / (2 ** 20 if sys.platform == 'darwin' else 1024)}
    try:
        with open('/proc/self/status') as f:
            for line in f:
                key = line.split(':', 1)[0]
                if key in ('VmHWM', 'VmRSS'):
                    out[key.lower() + '_mib'] = int(line.split()[1]) / 1024
    except OSError:
        pass
    out['peak_rss_mib'] = out.get('vmhwm_mib', out['ru_maxrss_mib'])
    return out


def load_average():
    try:
        return os.getloadavg()
    except OSError:
        return None


def machine_info(device: str) -> dict:
    import torch
    info = {
        'cpu_model': cpu_model(),
        'logical_cpus': os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'torch_version': torch.__version__,
        'python_version': platform.python_version(),
        'platform': platform.platform(),
        'device': device,
        'device_name': (torch.cuda.get_device_name() if device == 'cuda' else cpu_model()),
        'cuda_version': torch.version.cuda,
    }
    from importlib import metadata
    for dist in REPORTED_DISTS:
        try:  # from the installed metadata: importing them all would take seconds and memory
            info[f'{dist}_version'] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    average = load_average()
    if average is not None:
        info['load_average'] = average
    return info
