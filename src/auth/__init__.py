"""auth: users in MySQL, logins that return JWTs, token validation."""

from flask import Flask

from common import log as jsonlog
from common import metrics
from common.settings import load_or_exit
from common.web import register_json_errors


def create_app(test_config=None) -> Flask:
    """Build the auth Flask app; ``test_config`` may carry an ``AUTH`` AuthConfig."""
    from auth import db, passwords, views
    from auth.config import AuthConfig

    app = Flask(__name__)
    if test_config:
        app.config.update(test_config)
    if "AUTH" not in app.config:
        app.config["AUTH"] = load_or_exit(AuthConfig.from_env, "auth")
    jsonlog.configure("auth", app.config["AUTH"].log_level)
    metrics.configure("auth")
    metrics.instrument(app)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    db.init_app(app)
    config = app.config["AUTH"]
    passwords.configure(config.argon2_max_concurrent, config.argon2_queue_seconds)
    app.register_blueprint(views.bp)
    register_json_errors(app)
    return app
