"""The gateway's HTTP server: one aiohttp application that edges add their routes to."""
