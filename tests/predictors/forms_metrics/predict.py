from cog import BasePredictor, current_scope, emit_metric


class Predictor(BasePredictor):
    def predict(self, n: int) -> str:
        scope = current_scope()
        for _ in range(n):
            scope.record_metric("tokens", 1, mode="incr")
            scope.record_metric("steps", "s", mode="append")
        emit_metric("temperature", 0.5)
        return scope.context.get("user", "nobody")
