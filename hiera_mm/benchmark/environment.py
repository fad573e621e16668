"""What is installed here, the machine the numbers come from, and this process's peak memory."""
from __future__ import annotations

import functools
import importlib.util
import os
import platform
import resource
import sys


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def mmdet_error() -> str | None:
    """None when mmdet's models import here, else why not (mmdet or mmcv missing or broken)."""
    try:
        import mmdet.models.backbones  # noqa: F401
    except Exception as e:  # ImportError, or mmcv built without its ops, ...
        return f'{type(e).__name__}: {e}'.splitlines()[0][:200]
    return None


def have_mmdet() -> bool:
    return has_module('mmdet') and mmdet_error() is None


def why_no_mmdet() -> str:
    return mmdet_error() if has_module('mmdet') else 'not installed'


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
    for dist in ('transformers', 'timm', 'mmdet', 'mmcv', 'mmengine'):
        try:  # from the installed metadata: importing them all would take seconds and memory
            info[f'{dist}_version'] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    average = load_average()
    if average is not None:
        info['load_average'] = average
    return info
