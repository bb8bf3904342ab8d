"""A target model given as files: its checkpoint, preprocessing and member lists."""
