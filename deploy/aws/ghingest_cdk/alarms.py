"""CloudWatch alarms on what needs a person, all notifying the (encrypted) alarm topic.

- a dead-letter queue that holds anything: a notice that could not be processed or forwarded within its receives;
- the oldest notice in the inbox or a forward queue growing old: processing or a destination is behind or down;
- a function's errors or throttles: a crash (not a delivery's failure, which is recorded and settled) or too
  little concurrency.
An optional e-mail subscription (`AlarmEmail`) is the only subscriber the stack makes.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .messaging import Messaging
from .parameters import Parameters

PERIOD = Duration.minutes(5)
INBOX_OLDEST_SECONDS = 900  # a notice waits seconds normally; a quarter of an hour means processing is stuck
FORWARD_OLDEST_SECONDS = 3600  # forward jobs wait out retries (up to 10 minutes each by default); an hour is not


def _alarm(
    scope: Construct, name: str, metric: cloudwatch.Metric, threshold: float, description: str, topic: sns.ITopic
) -> cloudwatch.Alarm:
    alarm = metric.create_alarm(
        scope,
        name,
        alarm_description=description,
        threshold=threshold,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    alarm.add_alarm_action(actions.SnsAction(topic))
    return alarm


def _queue_alarms(
    scope: Construct, name: str, label: str, queues: tuple[sqs.IQueue, sqs.IQueue], oldest: int, topic: sns.ITopic
) -> None:
    queue, dead = queues
    _alarm(
        scope,
        f"{name}DeadLettersAlarm",
        dead.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
        0,
        f"ghingest: the {label} dead-letter queue holds notices (redrive: aws sqs start-message-move-task)",
        topic,
    )
    _alarm(
        scope,
        f"{name}OldestMessageAlarm",
        queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum"),
        oldest,
        f"ghingest: the oldest notice in the {label} queue is older than {oldest} s",
        topic,
    )


def define_alarms(
    scope: Construct, messaging: Messaging, functions: Mapping[str, lambda_.Function], parameters: Parameters
) -> None:
    topic = messaging.alarm_topic
    subscription = sns.CfnSubscription(
        scope,
        "AlarmEmailSubscription",
        topic_arn=topic.topic_arn,
        protocol="email",
        endpoint=parameters.alarm_email.value_as_string,
    )
    subscription.cfn_options.condition = parameters.has_alarm_email
    inbox = (messaging.inbox_queue, messaging.inbox_dead_letter_queue)
    _queue_alarms(scope, "Inbox", "inbox", inbox, INBOX_OLDEST_SECONDS, topic)
    for forward in messaging.forward_queues:
        name = forward.destination.name
        _queue_alarms(
            forward.scope,
            "Forward",
            f"forward ({name})",
            (forward.queue, forward.dead_letter_queue),
            FORWARD_OLDEST_SECONDS,
            topic,
        )
    for name, function in functions.items():
        _alarm(
            scope,
            f"{name}ErrorsAlarm",
            function.metric_errors(period=PERIOD, statistic="Sum"),
            0,
            f"ghingest: the {name.lower()} function failed (an invocation raised or timed out)",
            topic,
        )
        _alarm(
            scope,
            f"{name}ThrottlesAlarm",
            function.metric_throttles(period=PERIOD, statistic="Sum"),
            0,
            f"ghingest: invocations of the {name.lower()} function were throttled",
            topic,
        )
