"""``placewatch demo``: the whole pipeline on one machine, with the example borough.

``plan`` (the scenario's timeline and the teams file), ``services`` (the database and broker:
configured, local or embedded), ``children`` (the placewatch processes), ``watch`` (what the
view shows, read from the database and the receiver's log), ``view`` (the live terminal view or
plain lines) and ``command`` (the subcommand that puts them together).
"""
