"""Reports of a run: the terminal dashboard."""

from .dashboard import print_dashboard, render_dashboard, target_colour

__all__ = ["print_dashboard", "render_dashboard", "target_colour"]
