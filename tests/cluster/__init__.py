"""The test cluster (docs/test-cluster.md): the fake API server with the controllers,
node agent, service proxy and gateway stand-in that make it run the chart for real."""
