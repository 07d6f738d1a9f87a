"""tpcni: the TupleNet CNI plugin (spec 1.0.0 with 1.1's STATUS and GC).

A container interface is a veth whose host end sits on br-int with `external_ids:iface-id` naming an lsp that
the plugin creates (address from the switch's subnet, chassis already this host). ADD returns once the agent
has marked the port ready, so a container's first packet is never lost. Modules: `spec` parses what the
runtime sends (pure), `result` builds what it gets back (pure), `links` and `ovsdb` touch the host, `plugin`
runs the commands, `main` is the executable. Start-up is kept light: this runs once per container.
"""
