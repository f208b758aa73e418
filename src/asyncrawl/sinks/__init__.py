"""Where results go: directories and S3, in one layout."""
