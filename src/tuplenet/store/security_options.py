"""The etcd TLS/user options as etcdctl spells them: the table argparse (security.add_arguments) and tpctl's
argparse-free trace path (cli/quickargs.py) both read. Its own module, importing nothing: `tpctl trace
--api` parses these options and never builds an EtcdSecurity (its dataclass costs ~2 ms of a start)."""

OPTIONS = (
    (("--cacert",), {"metavar": "FILE", "help": "verify etcd's TLS certificate with this CA bundle (env ETCDCTL_CACERT)"}),
    (("--cert",), {"metavar": "FILE", "help": "client TLS certificate for etcd (env ETCDCTL_CERT)"}),
    (("--key",), {"metavar": "FILE", "help": "key of the client certificate (env ETCDCTL_KEY)"}),
    (("--user",), {"metavar": "USER[:PASSWORD]", "help": "etcd user (env ETCDCTL_USER)"}),
    (("--password",), {"metavar": "PASSWORD", "help": "password of --user (env ETCDCTL_PASSWORD)"}),
)
