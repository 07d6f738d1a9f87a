"""TupleNet: etcd-described virtual networks on Open vSwitch over Geneve."""

__version__ = "0.4.0.dev0"
