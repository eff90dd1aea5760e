"""The helloworld sample app."""
