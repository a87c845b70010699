"""Showing: typed JSON payloads, terminal tables, SVG charts, the HTML report and the web UI.
Everything here renders what the layers below computed."""
