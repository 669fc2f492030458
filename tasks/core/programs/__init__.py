"""The remote programs, one module each with its builder, its parser and its typed results: deploy (also
rollback), state (read-state, status, unlock), token (rotate, check), setup (hierarchy, networks), migrate
(survey, migration, remove-old). ``protocol`` is how they all talk; ``library`` loads the shell in ../sh."""
