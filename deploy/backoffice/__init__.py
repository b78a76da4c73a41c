"""A reference agency back office: how an agency system integrates with the portal.

It takes dossiers in over either delivery channel — its AMQP queue (``consumer.py``, pika)
or the signed HTTP callback (``receiver.py``, stdlib ``http.server``, signatures checked
with ``signature.py``) — drops duplicates by delivery id, and drives each new dossier
through reception to result over the gateway's agency API (``gateway.py``). Run it with
``python -m deploy.backoffice --agency <code> --gateway <url>``.
"""
