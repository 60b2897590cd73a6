"""Data: IDX files and the data sets built from them."""
