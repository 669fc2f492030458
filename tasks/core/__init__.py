"""The layers under the fab tasks, bottom up: errors and grammar (rules for every value), inventory (hosts.yml
as config objects that own their derived paths), history (the release history), ssh (the transport), ui (what
the operator sees), programs (the remote programs: builders, the shell library, parsers) and cli (what every
task shares)."""
