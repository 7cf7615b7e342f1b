"""The sans-I/O core: pure domain logic. Nothing here performs I/O or imports a framework or a database."""
