from .backbone import HieraBackbone

__all__ = ['HieraBackbone']
