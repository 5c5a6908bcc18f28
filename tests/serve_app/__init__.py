"""The web app's tests (`nvcaffe serve`): a package, so that its conftest and helpers have names of their own."""
