"""Dataset preparation: converters from published formats to RecBole atomic files."""
