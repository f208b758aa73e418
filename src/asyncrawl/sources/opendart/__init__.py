"""OpenDART (Korea's electronic disclosure system): financial statements of listed companies."""
