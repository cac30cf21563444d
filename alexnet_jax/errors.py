"""The project's own errors: bad input a user can fix, said in one line.

Every error the project raises for a user to act on (a config value, a missing or damaged file, a
mesh that does not fit, a checkpoint that does not match) derives from Error, and its message is
one line that names the problem and the fix. The command-line layer (cli.run, main) prints those as
`error: ...` and exits 1; anything else (a bug here, or in JAX, Flax or Orbax) keeps its traceback.
Each class also derives from the builtin it stands for (ValueError, OSError, ...), so code that
catches those still catches it.
"""


class Error(Exception):
  """Bad input a user can fix; the message's first line says what and how."""


class ConfigError(Error, ValueError):
  """A config value that is unknown, out of range, or at odds with another."""


def first_line(error: BaseException) -> str:
  """What the user sees of an error: its message's first line, or its type's name."""
  text = str(error)
  return text.splitlines()[0] if text.strip() else type(error).__name__
