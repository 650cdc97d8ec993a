# The `export` job type (the hand-off zip, issue 14).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0002_unit_job_types'),
    ]

    operations = [
        migrations.AlterField(
            model_name='generationjob',
            name='type',
            field=models.CharField(choices=[('character-generation', 'Characters'), ('scene-generation', 'Scenes'), ('frame-generation', 'Frames'), ('video-generation', 'Videos'), ('video-stitching', 'Stitch'), ('portrait-generation', 'Portrait'), ('keyframe-generation', 'Keyframe'), ('refresh', 'Refresh'), ('export', 'Export')], max_length=32),
        ),
    ]
