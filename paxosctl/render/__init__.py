"""What an engine runs, rendered from a manifest: Kubernetes objects
(`k8s`) and systemd units (`systemd`), for `paxosctl render` and for the
membership driver that adds and removes agents on those engines.

Modules, by what they hold:

- `k8s`: `Options`, and the objects of a cluster or of one agent, in
  apply order, as plain dicts; `to_yaml` / `to_json` print them;
- `pods`: one agent's StatefulSet (its pod: command, volumes, probes);
- `tlsobjects`: the certificate Secrets, or cert-manager Certificates;
- `podmanifest`: the manifest rewritten for pods (the ConfigMap's TOML);
- `names`: the objects' names and DNS names, and the DNS-safety checks;
- `yamltext`: a YAML writer for plain data (no PyYAML at run time);
- `systemd`: one unit per agent placed on a host.

Imports only the shared top modules (manifest, errors, issuing) and
nothing at run time here: `from paxosctl.render import k8s` loads k8s alone.
"""
