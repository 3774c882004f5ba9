# A plain function, no class.
def predict(text: str) -> str:
    return text.upper()
