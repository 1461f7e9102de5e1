"""What a task plugin's package imports (docs/plugins.md).

``PluginTask`` is the base of a plugin's schema, ``DataSpec`` what its ``data_spec()`` returns
so that zoo models train on its data, ``field_error`` the 422 of a cross-field rule that names
its field; this module imports no torch, so the API
process can import every installed plugin's schema.  The builder's side, which needs torch, is
``observatory.training``.
"""

from server.dataspec import DataSpec
from server.plugins import GROUP
from server.task_base import PluginTask
from server.validation import field_error

__all__ = ["GROUP", "DataSpec", "PluginTask", "field_error"]
