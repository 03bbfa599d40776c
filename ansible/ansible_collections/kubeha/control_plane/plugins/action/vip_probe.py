# Copyright: (c) 2026, the kubeha authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the vip_probe binary from the host's module cache (plugins/plugin_utils/cached_binary.py)."""
from __future__ import annotations

from ansible_collections.kubeha.control_plane.plugins.plugin_utils.cached_binary import CachedBinaryAction as ActionModule

__all__ = ["ActionModule"]
